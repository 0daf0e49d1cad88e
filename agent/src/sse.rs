//! A sans-I/O parser for server-sent events (the `text/event-stream`
//! format both OpenAI and Anthropic stream in): bytes in, events out.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; empty when the server sent none.
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// The stream broke the format or a limit.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SseError {
    #[error("an event-stream line is longer than {0} bytes")]
    LineTooLong(usize),
    #[error("an event is larger than {0} bytes")]
    EventTooLarge(usize),
    #[error("the event stream is not UTF-8")]
    NotUtf8,
}

/// Incremental parser; feed it whatever chunks the network delivers.
#[derive(Debug)]
pub struct SseParser {
    line: Vec<u8>,
    event: String,
    data: String,
    has_data: bool,
    max: usize,
}

impl SseParser {
    /// A parser refusing lines and events larger than `max` bytes.
    pub fn new(max: usize) -> Self {
        SseParser { line: Vec::new(), event: String::new(), data: String::new(), has_data: false, max }
    }

    /// Consumes `bytes`, appending every completed event to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        for &b in bytes {
            if b != b'\n' {
                if self.line.len() >= self.max {
                    return Err(SseError::LineTooLong(self.max));
                }
                self.line.push(b);
                continue;
            }
            if self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
            let line = std::mem::take(&mut self.line);
            let line = std::str::from_utf8(&line).map_err(|_| SseError::NotUtf8)?;
            self.line_done(line, out)?;
        }
        Ok(())
    }

    fn line_done(&mut self, line: &str, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if line.is_empty() {
            if self.has_data {
                out.push(SseEvent { event: std::mem::take(&mut self.event), data: std::mem::take(&mut self.data) });
            }
            self.event.clear();
            self.has_data = false;
            return Ok(());
        }
        if line.starts_with(':') {
            return Ok(()); // a comment, used as keep-alive
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.event = value.to_owned(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
                if self.data.len() > self.max {
                    return Err(SseError::EventTooLarge(self.max));
                }
            }
            _ => {} // id, retry and unknown fields do not matter here
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(input: &[u8], chunk: usize) -> Vec<SseEvent> {
        let mut p = SseParser::new(1 << 16);
        let mut out = Vec::new();
        for c in input.chunks(chunk.max(1)) {
            p.feed(c, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn events_data_and_comments() {
        let input =
            b": keep-alive\nevent: message_start\ndata: {\"a\":1}\n\ndata: line1\r\ndata:line2\r\n\r\ndata: [DONE]\n\n";
        let events = parse_all(input, 1000);
        assert_eq!(
            events,
            [
                SseEvent { event: "message_start".into(), data: "{\"a\":1}".into() },
                SseEvent { event: "".into(), data: "line1\nline2".into() },
                SseEvent { event: "".into(), data: "[DONE]".into() },
            ]
        );
    }

    #[test]
    fn limits_are_enforced() {
        let mut p = SseParser::new(8);
        let mut out = Vec::new();
        assert_eq!(p.feed(b"data: 0123456789\n", &mut out), Err(SseError::LineTooLong(8)));
        let mut p = SseParser::new(12);
        assert_eq!(p.feed(b"data:1234567\ndata:1234567\n", &mut out), Err(SseError::EventTooLarge(12)));
        let mut p = SseParser::new(8);
        assert_eq!(p.feed(b"data:\xff\n", &mut out), Err(SseError::NotUtf8));
    }

    proptest! {
        /// However the network splits the stream, the events are the same.
        #[test]
        fn chunking_does_not_matter(chunk in 1usize..40) {
            let input = b"event: a\ndata: x\n\ndata: {\"t\":\"hello\"}\n\n: c\ndata: y\ndata: z\n\n";
            prop_assert_eq!(parse_all(input, chunk), parse_all(input, input.len()));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut p = SseParser::new(64);
            let mut out = Vec::new();
            let _ = p.feed(&bytes, &mut out);
        }
    }
}
