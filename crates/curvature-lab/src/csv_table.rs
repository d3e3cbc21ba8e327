//! Every CSV file of a run or a sweep, through the `csv` crate (RFC 4180): a field with a
//! comma, quote or newline (a grid label such as `[32,16]`) is quoted on writing and read
//! back as one field. Whole files are written atomically ([`write_atomic`]); the per-epoch
//! files (`metrics.csv`, `spectra.csv`) grow by appended rows.

use std::path::Path;

use crate::error::{Result, io, write_atomic};

/// `rows` (the header first) as CSV bytes.
///
/// # Errors
/// [`crate::LabError::Io`] naming `path` (rows of different widths).
pub fn to_bytes<R: AsRef<[S]>, S: AsRef<[u8]>>(path: &Path, rows: &[R]) -> Result<Vec<u8>> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows {
        writer.write_record(row.as_ref()).map_err(|e| io(path, e))?;
    }
    writer.into_inner().map_err(|e| io(path, e.error()))
}

/// Write `rows` (the header first) to `path` atomically.
///
/// # Errors
/// File errors, rows of different widths.
pub fn write<R: AsRef<[S]>, S: AsRef<[u8]>>(path: &Path, rows: &[R]) -> Result<()> {
    write_atomic(path, &to_bytes(path, rows)?)
}

/// Append one row to `path`, writing the `header` row first when the file does not exist yet.
///
/// # Errors
/// File errors.
pub fn append(path: &Path, header: &[&str], row: &[String]) -> Result<()> {
    use std::io::Write;
    let bytes = if path.exists() {
        to_bytes(path, &[row])?
    } else {
        let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
        to_bytes(path, &[&header[..], row])?
    };
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| io(path, e))?;
    file.write_all(&bytes).map_err(|e| io(path, e))
}

/// The header and the rows of `path` (rows may differ in width: older files have fewer
/// columns); `None` when the file does not exist.
///
/// # Errors
/// An unreadable or malformed file.
pub fn read(path: &Path) -> Result<Option<(csv::StringRecord, Vec<csv::StringRecord>)>> {
    let mut reader = match csv::ReaderBuilder::new().flexible(true).from_path(path) {
        Ok(r) => r,
        Err(e) if matches!(e.kind(), csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::NotFound) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(io(path, e)),
    };
    let header = reader.headers().map_err(|e| io(path, e))?.clone();
    let rows = reader
        .records()
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| io(path, e))?;
    Ok(Some((header, rows)))
}
