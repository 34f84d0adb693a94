//! Reading a source ahead on a thread of its own, so that the system calls
//! and the kernel's copying of a large file overlap the parsing instead of
//! adding to it: `billd x12 validate` and posting read 835s of hundreds of
//! megabytes, and on this project's two-core reference machine the read
//! calls alone were about a tenth of validating one.
//!
//! Only whole buffers cross between the threads, and they cycle through a
//! fixed pool: nothing is allocated per read in the steady state, and
//! memory stays at `buffers × chunk` bytes whatever the file's size. (A
//! parser that allocated on one thread and freed on the other would lose
//! more to the allocator than it gains; this only moves bytes.)

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// Bytes read per chunk by default.
pub const CHUNK: usize = 1 << 20;
/// Chunks in flight by default (being read, waiting, and being consumed).
pub const BUFFERS: usize = 3;

/// A [`Read`] whose source is read ahead, chunk by chunk, on its own
/// thread. Reads return the source's bytes in order, then its error (if
/// reading it failed), then end of input.
pub struct Prefetch {
    full: Receiver<io::Result<Vec<u8>>>,
    empty: SyncSender<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Prefetch {
    /// Starts reading `src` on a new thread with the default chunk size
    /// and pool.
    ///
    /// # Errors
    /// When the thread cannot be started.
    pub fn spawn<R: Read + Send + 'static>(src: R) -> io::Result<Prefetch> {
        Prefetch::with_pool(src, CHUNK, BUFFERS)
    }

    /// Starts reading `src` on a new thread, `chunk` bytes at a time, with
    /// `buffers` (at least two) chunks in flight.
    ///
    /// # Errors
    /// When the thread cannot be started.
    pub fn with_pool<R: Read + Send + 'static>(
        mut src: R,
        chunk: usize,
        buffers: usize,
    ) -> io::Result<Prefetch> {
        let buffers = buffers.max(2);
        let chunk = chunk.max(1);
        let (full_tx, full) = sync_channel::<io::Result<Vec<u8>>>(buffers);
        let (empty, empty_rx) = sync_channel::<Vec<u8>>(buffers);
        for _ in 0..buffers - 1 {
            empty
                .send(Vec::with_capacity(chunk))
                .map_err(|_| io::Error::other("prefetch pool closed"))?;
        }
        std::thread::Builder::new()
            .name("prefetch".into())
            .spawn(move || {
                // Each buffer comes back empty once consumed; a closed
                // channel means the reader was dropped.
                while let Ok(mut buf) = empty_rx.recv() {
                    let filled = fill(&mut src, &mut buf, chunk);
                    let last = !matches!(filled, Ok(n) if n > 0);
                    let sent = match filled {
                        Ok(0) => full_tx.send(Ok(Vec::new())),
                        Ok(_) => full_tx.send(Ok(buf)),
                        Err(e) => full_tx.send(Err(e)),
                    };
                    if sent.is_err() || last {
                        break;
                    }
                }
            })?;
        Ok(Prefetch {
            full,
            empty,
            current: Vec::with_capacity(chunk),
            pos: 0,
            done: false,
        })
    }
}

/// Reads into `buf` (cleared first) until it holds `chunk` bytes or the
/// source ends; the number of bytes read.
fn fill<R: Read>(src: &mut R, buf: &mut Vec<u8>, chunk: usize) -> io::Result<usize> {
    buf.clear();
    buf.resize(chunk, 0);
    let mut n = 0;
    while n < chunk {
        match src.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                buf.clear();
                return Err(e);
            }
        }
    }
    buf.truncate(n);
    Ok(n)
}

impl Read for Prefetch {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        while self.pos == self.current.len() {
            if self.done {
                return Ok(0);
            }
            let next = self.full.recv().unwrap_or_else(|_| {
                Err(io::Error::other("the prefetch thread stopped unexpectedly"))
            });
            match next {
                Ok(buf) if buf.is_empty() => self.done = true,
                Ok(buf) => {
                    let used = std::mem::replace(&mut self.current, buf);
                    self.pos = 0;
                    // Back into the pool; fails only once the thread ended.
                    let _ = self.empty.send(used);
                }
                Err(e) => {
                    self.done = true;
                    return Err(e);
                }
            }
        }
        let n = out.len().min(self.current.len() - self.pos);
        out[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source that hands out at most `step` bytes per read, then fails
    /// with `fail` (when set) instead of ending.
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        step: usize,
        fail: Option<io::ErrorKind>,
    }

    impl Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.pos == self.data.len() {
                return match self.fail {
                    Some(kind) => Err(io::Error::new(kind, "disk gone")),
                    None => Ok(0),
                };
            }
            let n = out.len().min(self.step).min(self.data.len() - self.pos);
            out[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn every_byte_comes_through_in_order_whatever_the_chunking() {
        for (len, step, chunk, buffers, out) in [
            (0, 1, 4, 2, 3),
            (1, 1, 1, 2, 1),
            (10_000, 7, 64, 2, 100),
            (10_000, 1000, 3, 5, 4096),
            (100_000, 4096, 1 << 20, 3, 65_536),
        ] {
            let src = Trickle {
                data: data(len),
                pos: 0,
                step,
                fail: None,
            };
            let mut r = Prefetch::with_pool(src, chunk, buffers).unwrap();
            let mut got = Vec::new();
            let mut buf = vec![0; out];
            loop {
                let n = r.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            assert_eq!(got, data(len), "len {len} step {step} chunk {chunk}");
            assert_eq!(r.read(&mut buf).unwrap(), 0, "stays at the end");
        }
    }

    #[test]
    fn a_read_error_arrives_after_the_bytes_before_it() {
        let src = Trickle {
            data: data(5000),
            pos: 0,
            step: 300,
            fail: Some(io::ErrorKind::BrokenPipe),
        };
        let mut r = Prefetch::with_pool(src, 1024, 2).unwrap();
        let mut got = Vec::new();
        let err = loop {
            let mut buf = [0; 512];
            match r.read(&mut buf) {
                Ok(0) => panic!("ended without the error"),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        // The chunk the error cut short is dropped whole: what came
        // through is a prefix, in order, of whole chunks.
        assert_eq!(got, data(5000)[..got.len()]);
        assert_eq!(got.len() % 1024, 0);
        assert_eq!(r.read(&mut [0; 8]).unwrap(), 0);
    }

    #[test]
    fn dropping_the_reader_early_stops_the_thread() {
        // An endless source that says when it is dropped, which happens
        // only when the thread that owns it ends.
        struct Endless(std::sync::mpsc::Sender<()>);
        impl Read for Endless {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                out.fill(b'x');
                Ok(out.len())
            }
        }
        impl Drop for Endless {
            fn drop(&mut self) {
                let _ = self.0.send(());
            }
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let mut r = Prefetch::with_pool(Endless(tx), 4096, 2).unwrap();
        let mut buf = [0; 100];
        r.read_exact(&mut buf).unwrap();
        assert_eq!(buf, [b'x'; 100]);
        assert!(rx.try_recv().is_err(), "still reading while in use");
        drop(r);
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("the thread ended once the reader was dropped");
    }
}
