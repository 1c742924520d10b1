//! A tiny JSON writer: the probe depends on nothing but libc.

pub struct Json {
    out: String,
    /// Per open container: whether the next item needs a comma.
    comma: Vec<bool>,
}

impl Json {
    pub fn new() -> Json {
        Json {
            out: String::new(),
            comma: Vec::new(),
        }
    }

    fn sep(&mut self) {
        if let Some(c) = self.comma.last_mut() {
            if *c {
                self.out.push(',');
            }
            *c = true;
        }
    }

    pub fn begin_object(&mut self) -> &mut Self {
        self.sep();
        self.out.push('{');
        self.comma.push(false);
        self
    }

    pub fn end_object(&mut self) -> &mut Self {
        self.comma.pop();
        self.out.push('}');
        self
    }

    pub fn begin_array(&mut self) -> &mut Self {
        self.sep();
        self.out.push('[');
        self.comma.push(false);
        self
    }

    pub fn end_array(&mut self) -> &mut Self {
        self.comma.pop();
        self.out.push(']');
        self
    }

    /// Writes `"name":`; the value that follows must not add a comma.
    pub fn key(&mut self, name: &str) -> &mut Self {
        self.sep();
        self.string_raw(name);
        self.out.push(':');
        if let Some(c) = self.comma.last_mut() {
            *c = false;
        }
        self
    }

    pub fn str(&mut self, s: &str) -> &mut Self {
        self.sep();
        self.string_raw(s);
        self
    }

    pub fn num<N: std::fmt::Display>(&mut self, n: N) -> &mut Self {
        self.sep();
        self.out.push_str(&n.to_string());
        self
    }

    pub fn bool(&mut self, b: bool) -> &mut Self {
        self.sep();
        self.out.push_str(if b { "true" } else { "false" });
        self
    }

    pub fn null(&mut self) -> &mut Self {
        self.sep();
        self.out.push_str("null");
        self
    }

    /// `"name": "value"`.
    pub fn field_str(&mut self, name: &str, value: &str) -> &mut Self {
        self.key(name).str(value)
    }

    /// `"name": n`.
    pub fn field_num<N: std::fmt::Display>(&mut self, name: &str, n: N) -> &mut Self {
        self.key(name).num(n)
    }

    /// `"name": ["a", "b"]`.
    pub fn field_strs<S: AsRef<str>>(&mut self, name: &str, items: &[S]) -> &mut Self {
        self.key(name).begin_array();
        for item in items {
            self.str(item.as_ref());
        }
        self.end_array()
    }

    fn string_raw(&mut self, s: &str) {
        self.out.push('"');
        for c in s.chars() {
            match c {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                '\r' => self.out.push_str("\\r"),
                '\t' => self.out.push_str("\\t"),
                c if (c as u32) < 0x20 => self.out.push_str(&format!("\\u{:04x}", c as u32)),
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }

    pub fn finish(self) -> String {
        self.out
    }
}
