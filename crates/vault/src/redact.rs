//! Last line of defence against leaks: every secret value this process handles is registered
//! here, and log output passes through a writer that replaces registered values with `****`.
//!
//! Registration must stay cheap whatever callers send (a user can write many large secrets), so
//! the set is bounded in count and bytes (oldest evicted first), and matching uses two automata:
//! a large one over most values, rebuilt only every [`REBUILD_EVERY`] registrations, and a small
//! one over the values registered since, rebuilt on each registration. A value is masked from
//! the moment it is registered, and the cost of a registration stays small on average. Automata
//! are built outside the lock log writers take, then swapped in.

use std::borrow::Cow;
use std::collections::{HashSet, VecDeque};
use std::io::{self, Write};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use aho_corasick::{AhoCorasick, AhoCorasickKind};
use tracing_subscriber::fmt::MakeWriter;

/// Values shorter than this are not registered: they would mask innocent text.
const MIN_LEN: usize = 6;
/// Longer values are registered by their first this-many bytes, which still masks a leak of the
/// value (its prefix is replaced) without making one value dominate the set.
const MAX_LEN: usize = 4096;
/// The large automaton is rebuilt after this many registrations.
const REBUILD_EVERY: usize = 64;

/// The set of values to mask.
pub struct Redactor {
    max_values: usize,
    max_bytes: usize,
    /// Registered values, oldest first; changed by one registering thread at a time.
    values: Mutex<Values>,
    /// The automata log writers use; replaced whole, never mutated.
    matchers: RwLock<Arc<Matchers>>,
}

#[derive(Default)]
struct Values {
    order: VecDeque<Vec<u8>>,
    seen: HashSet<Vec<u8>>,
    bytes: usize,
    /// How many of the newest values are only in the small automaton.
    recent: usize,
}

#[derive(Default)]
struct Matchers {
    main: Option<AhoCorasick>,
    recent: Option<AhoCorasick>,
}

fn build<'a>(values: impl IntoIterator<Item = &'a Vec<u8>>) -> Option<AhoCorasick> {
    AhoCorasick::builder().kind(Some(AhoCorasickKind::NoncontiguousNFA)).build(values).ok()
}

fn mask<'a>(m: &Option<AhoCorasick>, text: Cow<'a, [u8]>) -> Cow<'a, [u8]> {
    match m {
        Some(m) if m.is_match(text.as_ref()) => {
            let mut out = Vec::with_capacity(text.len());
            m.replace_all_with_bytes(text.as_ref(), &mut out, |_, _, dst| {
                dst.extend_from_slice(b"****");
                true
            });
            Cow::Owned(out)
        }
        _ => text,
    }
}

static GLOBAL: OnceLock<Redactor> = OnceLock::new();

impl Default for Redactor {
    fn default() -> Self {
        Self::with_limits(10_000, 4 * 1024 * 1024)
    }
}

impl Redactor {
    /// A redactor keeping at most `max_values` values and `max_bytes` bytes.
    pub fn with_limits(max_values: usize, max_bytes: usize) -> Self {
        Self { max_values, max_bytes, values: Mutex::default(), matchers: RwLock::default() }
    }

    /// The process-wide redactor used by logging.
    pub fn global() -> &'static Redactor {
        GLOBAL.get_or_init(Redactor::default)
    }

    /// Adds `value` to the values masked from now on.
    pub fn register(&self, value: &[u8]) {
        if value.len() < MIN_LEN {
            return;
        }
        let value = &value[..value.len().min(MAX_LEN)];
        let Ok(mut values) = self.values.lock() else { return };
        if values.seen.contains(value) {
            return;
        }
        values.order.push_back(value.to_vec());
        values.seen.insert(value.to_vec());
        values.bytes += value.len();
        values.recent += 1;
        let mut evicted = false;
        while values.order.len() > self.max_values || values.bytes > self.max_bytes {
            let Some(old) = values.order.pop_front() else { break };
            values.bytes -= old.len();
            values.seen.remove(&old);
            evicted = true;
        }
        let current = self.matchers.read().map(|m| m.clone()).unwrap_or_default();
        let next = if evicted || values.recent >= REBUILD_EVERY || values.recent > values.order.len() {
            values.recent = 0;
            Matchers { main: build(&values.order), recent: None }
        } else {
            let split = values.order.len() - values.recent;
            Matchers { main: current.main.clone(), recent: build(values.order.range(split..)) }
        };
        // Writers keep using the previous automata until this swap.
        if let Ok(mut m) = self.matchers.write() {
            *m = Arc::new(next);
        }
    }

    /// How many values and bytes are registered.
    pub fn size(&self) -> (usize, usize) {
        self.values.lock().map(|v| (v.order.len(), v.bytes)).unwrap_or((0, 0))
    }

    /// `text` with every registered value replaced by `****`.
    pub fn redact<'a>(&self, text: &'a [u8]) -> Cow<'a, [u8]> {
        let Ok(matchers) = self.matchers.read().map(|m| m.clone()) else { return Cow::Borrowed(text) };
        mask(&matchers.recent, mask(&matchers.main, Cow::Borrowed(text)))
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

    #[test]
    fn long_values_are_masked_by_their_prefix() {
        let r = Redactor::default();
        let long = vec![b'k'; 10_000];
        r.register(&long);
        let shown = r.redact(&long);
        assert!(shown.len() < 6_000 && shown.starts_with(b"****"), "{}", shown.len());
    }

    #[test]
    fn the_set_stays_bounded_and_evicts_the_oldest() {
        let r = Redactor::with_limits(100, 64 * 1024);
        for i in 0..300 {
            let mut v = format!("value-{i:08}-").into_bytes();
            v.resize(1000, b'x');
            r.register(&v);
            // Masked from the moment it is registered, whichever automaton holds it.
            assert_eq!(r.redact(&v).as_ref(), b"****", "value {i}");
        }
        let (count, bytes) = r.size();
        assert!(bytes <= 64 * 1024 && count <= 100, "{count} {bytes}");
        // The oldest was evicted; a recent one is still masked.
        let mut oldest = b"value-00000000-".to_vec();
        oldest.resize(1000, b'x');
        assert_eq!(r.redact(&oldest).as_ref(), oldest.as_slice());
        let mut recent = b"value-00000290-".to_vec();
        recent.resize(1000, b'x');
        assert_eq!(r.redact(&recent).as_ref(), b"****");
    }
}
