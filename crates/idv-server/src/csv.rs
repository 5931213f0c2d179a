//! CSV for downloads (the API's inventory export, the console's exports):
//! RFC 4180 quoting, and a leading `'` on a cell a spreadsheet would read
//! as a formula (OWASP's CSV injection advice).

/// Appends one field to `out`: guarded, then quoted when it holds `,`,
/// `"`, CR or LF (RFC 4180 §2).
pub fn push_field(out: &mut String, v: &str) {
    let guarded = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{v}")
    } else {
        v.to_owned()
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&guarded.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(&guarded);
    }
}

/// The fields as one line, without its line end.
pub fn line<S: AsRef<str>>(fields: &[S]) -> String {
    let mut out = String::new();
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_field(&mut out, f.as_ref());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_and_guarded() {
        assert_eq!(
            line(&["plain", "a,b", "say \"hi\""]),
            "plain,\"a,b\",\"say \"\"hi\"\"\""
        );
        assert_eq!(line(&["=HYPERLINK(\"x\")"]), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(line(&["@SUM(A1)", "-1", "+1"]), "'@SUM(A1),'-1,'+1");
    }
}
