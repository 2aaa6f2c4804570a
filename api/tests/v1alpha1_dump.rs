#[test]
fn dump() {
    use flotta_api::v1alpha1::*;
    let s = object_schema::<EdgeDevice>();
    std::fs::write("/tmp/ed.json", serde_json::to_string_pretty(&s).unwrap()).unwrap();
    let s = object_schema::<EdgeWorkload>();
    std::fs::write("/tmp/ew.json", serde_json::to_string_pretty(&s).unwrap()).unwrap();
    let s = object_schema::<EdgeDeviceSignedRequest>();
    std::fs::write("/tmp/edsr.json", serde_json::to_string_pretty(&s).unwrap()).unwrap();
    let s = object_schema::<EdgeConfig>();
    std::fs::write("/tmp/ec.json", serde_json::to_string_pretty(&s).unwrap()).unwrap();
    let s = object_schema::<PlaybookExecution>();
    std::fs::write("/tmp/pe.json", serde_json::to_string_pretty(&s).unwrap()).unwrap();
}
