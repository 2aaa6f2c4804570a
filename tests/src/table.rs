//! Reading kubectl's human-readable tables (`get`, `api-resources`).
//!
//! kubectl aligns columns with a tab writer, so every cell starts at the byte offset where its
//! header starts. A column starts at offset 0 or after two or more spaces, which keeps
//! one-space headers such as `LAST SEEN` in one piece, and lets empty cells and cells with
//! single spaces (`[create delete …]`) be read correctly. Column names are matched
//! case-insensitively with spaces removed (`last seen` finds `LAST SEEN`).
//! Limits: ASCII tables only; a header with only one space before the next column would merge.

use anyhow::{Context, Result, anyhow};

/// A parsed table: the header names and the rows cut at the header's column offsets.
#[derive(Debug, Clone)]
pub struct Table {
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
    text: String,
}

impl Table {
    /// Parses `text`, whose first non-empty line is the header.
    pub fn parse(text: &str) -> Result<Self> {
        let mut lines = text.lines().filter(|line| !line.trim().is_empty());
        let header = lines
            .next()
            .ok_or_else(|| anyhow!("expected a table, got no output"))?;
        let starts = column_starts(header);
        let columns = cut(header, &starts);
        let rows = lines.map(|line| cut(line, &starts)).collect();
        Ok(Self {
            columns,
            rows,
            text: text.to_owned(),
        })
    }

    /// The header names as printed.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The data rows.
    pub fn rows(&self) -> &[Vec<String>] {
        &self.rows
    }

    /// The index of the column named `name` (normalized comparison).
    pub fn column(&self, name: &str) -> Option<usize> {
        let wanted = normalize(name);
        self.columns
            .iter()
            .position(|column| normalize(column) == wanted)
    }

    /// Whether a column named `name` exists.
    pub fn has_column(&self, name: &str) -> bool {
        self.column(name).is_some()
    }

    /// Fails, showing the table, unless every column in `names` exists.
    pub fn require_columns(&self, names: &[&str]) -> Result<()> {
        let missing: Vec<&str> = names
            .iter()
            .copied()
            .filter(|name| !self.has_column(name))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(anyhow!(
                "columns {missing:?} missing; header is {:?}\n{}",
                self.columns,
                self.text
            ))
        }
    }

    /// The row whose `NAME` cell is `name`.
    pub fn row(&self, name: &str) -> Result<&[String]> {
        let index = self
            .column("NAME")
            .ok_or_else(|| anyhow!("no NAME column in\n{}", self.text))?;
        self.rows
            .iter()
            .find(|row| row.get(index).is_some_and(|cell| cell == name))
            .map(Vec::as_slice)
            .ok_or_else(|| anyhow!("no row named {name:?} in\n{}", self.text))
    }

    /// The cell of row `name` in column `column`.
    pub fn cell(&self, name: &str, column: &str) -> Result<String> {
        let index = self
            .column(column)
            .ok_or_else(|| anyhow!("no column {column:?} in\n{}", self.text))?;
        let row = self.row(name)?;
        row.get(index)
            .cloned()
            .with_context(|| format!("row {name:?} has no cell {index} in\n{}", self.text))
    }

    /// The values of column `column` in every row.
    pub fn column_values(&self, column: &str) -> Result<Vec<String>> {
        let index = self
            .column(column)
            .ok_or_else(|| anyhow!("no column {column:?} in\n{}", self.text))?;
        Ok(self
            .rows
            .iter()
            .map(|row| row.get(index).cloned().unwrap_or_default())
            .collect())
    }

    /// The table as kubectl printed it.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// Upper case without spaces: `Last Seen` → `LASTSEEN`.
pub fn normalize(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_uppercase)
        .collect()
}

fn column_starts(header: &str) -> Vec<usize> {
    let bytes = header.as_bytes();
    let mut starts = Vec::new();
    let mut spaces = 0_usize;
    for (index, byte) in bytes.iter().enumerate() {
        if *byte == b' ' {
            spaces += 1;
            continue;
        }
        if index == 0 || spaces >= 2 {
            starts.push(index);
        }
        spaces = 0;
    }
    starts
}

fn cut(line: &str, starts: &[usize]) -> Vec<String> {
    starts
        .iter()
        .enumerate()
        .map(|(column, &start)| {
            let end = starts.get(column + 1).copied().unwrap_or(line.len());
            let end = end.min(line.len());
            line.get(start.min(end)..end)
                .unwrap_or_default()
                .trim()
                .to_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_follow_header_offsets() {
        let text = "NAME   PHASE   LAST SEEN   AGE\n\
                    dev1           <unknown>   5s\n\
                    dev2   up      3s          7s\n";
        let table = Table::parse(text).unwrap();
        assert_eq!(table.columns(), ["NAME", "PHASE", "LAST SEEN", "AGE"]);
        assert!(table.has_column("last seen"));
        assert_eq!(table.cell("dev1", "PHASE").unwrap(), "");
        assert_eq!(table.cell("dev1", "LASTSEEN").unwrap(), "<unknown>");
        assert_eq!(table.cell("dev2", "phase").unwrap(), "up");
        assert!(table.require_columns(&["WORKLOADS"]).is_err());
    }

    #[test]
    fn cells_may_contain_single_spaces() {
        let text = "NAME      VERBS                CATEGORIES\n\
                    widgets   [create get list]    flotta\n";
        let table = Table::parse(text).unwrap();
        assert_eq!(table.cell("widgets", "verbs").unwrap(), "[create get list]");
        assert_eq!(table.cell("widgets", "categories").unwrap(), "flotta");
    }
}
