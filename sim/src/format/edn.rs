//! A small EDN reader: enough for Jepsen/Knossos histories (maps, vectors, lists, keywords,
//! strings, integers, nil, booleans, symbols, `;` comments, commas as whitespace).

use std::collections::BTreeMap;

/// An EDN value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Edn {
    /// `nil`.
    Nil,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A string.
    Str(String),
    /// A keyword, without its colon.
    Keyword(String),
    /// A symbol.
    Symbol(String),
    /// A vector or a list.
    List(Vec<Edn>),
    /// A map.
    Map(BTreeMap<Edn, Edn>),
}

impl Edn {
    /// The value under keyword `key` of a map.
    pub fn get(&self, key: &str) -> Option<&Edn> {
        match self {
            Edn::Map(map) => map.get(&Edn::Keyword(key.to_string())),
            _ => None,
        }
    }
}

/// A parse error with its 1-based line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct EdnError {
    /// Where.
    pub line: usize,
    /// What.
    pub message: String,
}

/// Reads every top-level value in `text`, each with the line it starts on.
pub fn parse_all(text: &str) -> Result<Vec<(usize, Edn)>, EdnError> {
    let mut reader = Reader { bytes: text.as_bytes(), at: 0, line: 1 };
    let mut values = Vec::new();
    loop {
        reader.skip_blank();
        if reader.at >= reader.bytes.len() {
            return Ok(values);
        }
        let line = reader.line;
        values.push((line, reader.value()?));
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    line: usize,
}

impl Reader<'_> {
    fn error<T>(&self, message: impl Into<String>) -> Result<T, EdnError> {
        Err(EdnError { line: self.line, message: message.into() })
    }

    fn skip_blank(&mut self) {
        while let Some(&byte) = self.bytes.get(self.at) {
            match byte {
                b'\n' => self.line += 1,
                b' ' | b'\t' | b'\r' | b',' => {}
                b';' => {
                    while self.bytes.get(self.at).is_some_and(|b| *b != b'\n') {
                        self.at += 1;
                    }
                    continue;
                }
                _ => return,
            }
            self.at += 1;
        }
    }

    fn value(&mut self) -> Result<Edn, EdnError> {
        self.skip_blank();
        let Some(&byte) = self.bytes.get(self.at) else { return self.error("unexpected end of input") };
        match byte {
            b'[' | b'(' => {
                self.at += 1;
                Ok(Edn::List(self.sequence(if byte == b'[' { b']' } else { b')' })?))
            }
            b'{' => {
                self.at += 1;
                let items = self.sequence(b'}')?;
                if items.len() % 2 != 0 {
                    return self.error("map with an odd number of forms");
                }
                let mut map = BTreeMap::new();
                let mut items = items.into_iter();
                while let (Some(key), Some(value)) = (items.next(), items.next()) {
                    map.insert(key, value);
                }
                Ok(Edn::Map(map))
            }
            b'"' => self.string(),
            b':' => {
                self.at += 1;
                Ok(Edn::Keyword(self.token()))
            }
            _ => {
                let token = self.token();
                if token.is_empty() {
                    return self.error(format!("unexpected character {:?}", byte as char));
                }
                Ok(match token.as_str() {
                    "nil" => Edn::Nil,
                    "true" => Edn::Bool(true),
                    "false" => Edn::Bool(false),
                    _ => match token.parse::<i64>() {
                        Ok(number) => Edn::Int(number),
                        Err(_)
                            if token.starts_with(|c: char| c.is_ascii_digit() || c == '-')
                                && token.len() > 1 =>
                        {
                            return self.error(format!("bad number {token:?}"))
                        }
                        Err(_) => Edn::Symbol(token),
                    },
                })
            }
        }
    }

    fn sequence(&mut self, close: u8) -> Result<Vec<Edn>, EdnError> {
        let mut items = Vec::new();
        loop {
            self.skip_blank();
            match self.bytes.get(self.at) {
                None => return self.error(format!("missing closing {:?}", close as char)),
                Some(&byte) if byte == close => {
                    self.at += 1;
                    return Ok(items);
                }
                Some(b')' | b']' | b'}') => return self.error("mismatched closing bracket"),
                Some(_) => items.push(self.value()?),
            }
        }
    }

    fn string(&mut self) -> Result<Edn, EdnError> {
        self.at += 1;
        let mut text = Vec::new();
        loop {
            match self.bytes.get(self.at) {
                None => return self.error("unterminated string"),
                Some(b'"') => {
                    self.at += 1;
                    return String::from_utf8(text)
                        .map(Edn::Str)
                        .or_else(|_| self.error("string is not UTF-8"));
                }
                Some(b'\\') => {
                    let escaped = match self.bytes.get(self.at + 1) {
                        Some(b'n') => b'\n',
                        Some(b't') => b'\t',
                        Some(&other) => other,
                        None => return self.error("unterminated string"),
                    };
                    text.push(escaped);
                    self.at += 2;
                }
                Some(&byte) => {
                    if byte == b'\n' {
                        self.line += 1;
                    }
                    text.push(byte);
                    self.at += 1;
                }
            }
        }
    }

    fn token(&mut self) -> String {
        let start = self.at;
        while self.bytes.get(self.at).is_some_and(|b| {
            !matches!(
                b,
                b' ' | b'\t' | b'\r' | b'\n' | b',' | b'(' | b')' | b'[' | b']' | b'{' | b'}' | b'"' | b';'
            )
        }) {
            self.at += 1;
        }
        String::from_utf8_lossy(&self.bytes[start..self.at]).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_histories_with_comments_and_reports_lines() {
        let values = parse_all("[{:process 0, :type :invoke, :f :cas, :value [1 2]}\n ; note\n {:f :read :value nil :key \"k\"}]").unwrap();
        let Edn::List(items) = &values[0].1 else { panic!("a vector") };
        assert_eq!(items[0].get("value"), Some(&Edn::List(vec![Edn::Int(1), Edn::Int(2)])));
        assert_eq!(items[1].get("key"), Some(&Edn::Str("k".into())));
        assert_eq!(parse_all("{:a 1\n:b}").unwrap_err().line, 2);
        assert_eq!(parse_all("[1 2").unwrap_err().message, "missing closing ']'");
    }
}
