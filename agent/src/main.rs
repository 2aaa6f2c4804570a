//! `flotta-agent`: not built yet (see the crate documentation).

fn main() {
    eprintln!("flotta-agent is not implemented yet");
    std::process::exit(2);
}
