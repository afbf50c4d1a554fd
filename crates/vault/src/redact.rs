//! Last line of defence against leaks: every secret value this process handles is registered
//! here, and log output passes through a writer that replaces registered values with `****`.

use std::borrow::Cow;
use std::io::{self, Write};
use std::sync::{OnceLock, RwLock};

use aho_corasick::AhoCorasick;
use tracing_subscriber::fmt::MakeWriter;

/// Values shorter than this are not registered: they would mask innocent text.
const MIN_LEN: usize = 6;
/// At most this many values are kept; the oldest go first.
const MAX_VALUES: usize = 10_000;

/// The set of values to mask.
#[derive(Default)]
pub struct Redactor {
    inner: RwLock<State>,
}

#[derive(Default)]
struct State {
    values: Vec<Vec<u8>>,
    matcher: Option<AhoCorasick>,
}

static GLOBAL: OnceLock<Redactor> = OnceLock::new();

impl Redactor {
    /// The process-wide redactor used by logging.
    pub fn global() -> &'static Redactor {
        GLOBAL.get_or_init(Redactor::default)
    }

    /// Adds `value` to the values masked from now on.
    pub fn register(&self, value: &[u8]) {
        if value.len() < MIN_LEN {
            return;
        }
        let Ok(mut state) = self.inner.write() else { return };
        if state.values.iter().any(|v| v == value) {
            return;
        }
        if state.values.len() >= MAX_VALUES {
            state.values.remove(0);
        }
        state.values.push(value.to_vec());
        state.matcher = AhoCorasick::new(&state.values).ok();
    }

    /// `text` with every registered value replaced by `****`.
    pub fn redact<'a>(&self, text: &'a [u8]) -> Cow<'a, [u8]> {
        let Ok(state) = self.inner.read() else { return Cow::Borrowed(text) };
        match &state.matcher {
            Some(m) if m.is_match(text) => {
                let mut out = Vec::with_capacity(text.len());
                m.replace_all_with_bytes(text, &mut out, |_, _, dst| {
                    dst.extend_from_slice(b"****");
                    true
                });
                Cow::Owned(out)
            }
            _ => Cow::Borrowed(text),
        }
    }
}

/// A `MakeWriter` whose writers mask registered secret values.
#[derive(Clone)]
pub struct RedactingMakeWriter<M> {
    inner: M,
}

impl<M> RedactingMakeWriter<M> {
    /// Wraps `inner` (such as `std::io::stderr`).
    pub fn new(inner: M) -> Self {
        Self { inner }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for RedactingMakeWriter<M> {
    type Writer = RedactingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter { inner: self.inner.make_writer() }
    }
}

/// A writer that masks registered values. The fmt layer writes each event in one call, so a
/// value is never split across writes.
pub struct RedactingWriter<W> {
    inner: W,
}

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let out = Redactor::global().redact(buf);
        self.inner.write_all(&out)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_values_are_masked() {
        let r = Redactor::default();
        r.register(b"hunter2-canary");
        r.register(b"abc"); // too short to register
        assert_eq!(r.redact(b"password is hunter2-canary, ok abc").as_ref(), b"password is ****, ok abc");
        assert!(matches!(r.redact(b"nothing here"), Cow::Borrowed(_)));
    }
}
