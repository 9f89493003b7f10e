//! Keeps large, short-lived buffers out of the heap so that freeing them returns the memory.
//!
//! A `/metrics` body for 10 000 scheduled http targets is about 18 MB. glibc raises its mmap
//! threshold each time such a buffer is freed and serves the next ones from the heap, where they
//! stay resident: RSS climbs by a body every few scrapes (benches/load/schedule-scale.sh: 34 → 83
//! MiB in two minutes). A fixed threshold keeps every allocation of 1 MiB or more mmapped, and
//! unmapped when freed (the same run: flat at 42 MiB).

/// Call once, before the runtime starts. No-op where the C library is not glibc.
pub fn return_large_buffers_to_the_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
