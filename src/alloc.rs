//! Large, short-lived buffers: kept out of the heap so that freeing them returns the memory, and
//! on huge pages so that filling them is cheap.
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

/// Asks the kernel to back `buf`'s unused capacity with transparent huge pages (Debian's default
/// THP mode is `madvise`): filling an 18 MB `/metrics` body then takes a few dozen page faults
/// instead of 4 500. Only for buffers of 2 MiB or more; a no-op elsewhere and off Linux.
pub fn advise_huge_pages(buf: &mut String) {
    const HUGE_PAGE: usize = 2 << 20;
    const PAGE: usize = 4096;
    let spare = buf.capacity() - buf.len();
    if spare < HUGE_PAGE {
        return;
    }
    // madvise wants a page-aligned start; the kernel uses the aligned 2 MiB ranges within.
    let start = buf.as_ptr() as usize + buf.len();
    let aligned = start.next_multiple_of(PAGE);
    let len = (start + spare - aligned) / PAGE * PAGE;
    #[cfg(target_os = "linux")]
    // SAFETY: the range lies within `buf`'s own allocation, and MADV_HUGEPAGE only changes how the
    // kernel backs it, never its contents; a failure (THP off) is harmless and ignored.
    unsafe {
        libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (aligned, len);
}
