//! Memory while streaming does not grow with the number of transaction
//! sets: the bytes live on the heap at the peak of validating an 835 of
//! 5,000 sets match those for 20 sets (counted by a global allocator that
//! wraps the system one; the only test in this binary, so no other test's
//! allocations count).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use billd_x12::stream::Transactions;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// Counting needs the allocator interface, which is unsafe by definition;
// every call is passed to the system allocator unchanged.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on to System unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// An 835 interchange of `n` balanced transaction sets.
fn file(n: usize) -> Vec<u8> {
    let mut x = String::from(
        "ISA*00*          *00*          *ZZ*A              *ZZ*B              *240101*1200*^*00501*000000001*0*P*:~GS*HP*A*B*20240101*1200*1*X*005010X221A1~",
    );
    for i in 1..=n {
        x.push_str(&format!(
            "ST*835*{i:04}~BPR*I*80*C*CHK************20240101~TRN*1*T{i}*1~N1*PR*PAYER~N1*PE*CLINIC*XX*1234567893~LX*1~CLP*A{i}*1*100*80**12~CAS*CO*45*20~SE*9*{i:04}~"
        ));
    }
    x.push_str(&format!("GE*{n}*1~IEA*1*000000001~"));
    x.into_bytes()
}

/// Peak heap bytes above the starting level while validating `input`.
fn peak_while_streaming(input: &[u8]) -> usize {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let mut s = Transactions::validate(input);
    let mut sets = 0;
    for item in &mut s {
        let item = item.unwrap();
        assert!(item.issues.is_empty());
        sets += 1;
    }
    let end = s.finish().unwrap();
    assert_eq!((end.transactions, end.errors), (sets, 0));
    PEAK.load(Ordering::Relaxed) - base
}

#[test]
fn memory_does_not_grow_with_the_number_of_transaction_sets() {
    let (small, large) = (file(20), file(5_000));
    // Warm up once-only tables (code lists) so both runs start alike.
    peak_while_streaming(&small);
    let a = peak_while_streaming(&small);
    let b = peak_while_streaming(&large);
    assert!(
        b <= a + 4096,
        "peak {b} bytes for 5,000 sets vs {a} for 20: memory grows with the file"
    );
    assert!(
        b < large.len() / 8,
        "peak {b} bytes for a {}-byte file",
        large.len()
    );
}
