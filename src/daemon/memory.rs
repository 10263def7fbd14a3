//! Memory of a process that runs for months.
//!
//! A pass holds a whole team at once: the read, the plan, the answers. When
//! it ends, glibc keeps the freed pages in its arenas (by default up to
//! eight per core, one per thread that allocated), so an idle service would
//! go on holding its busiest moment: 27 MB instead of 18.5 MB at 5,000
//! declared users (`cargo bench --bench idle`). Two arenas are plenty for a
//! service that spends its time waiting, and trimming after the passes
//! hands the free pages back to the kernel.

/// Limits glibc to two arenas. Call before any thread starts.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn limit_arenas() {
    // SAFETY: mallopt takes no pointer; called before the runtime's threads
    // exist, it cannot race an allocation on another thread. A refusal
    // (result 0) leaves glibc's default, which is only bigger.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Returns the allocator's free pages to the operating system. Cheap (it
/// walks free lists only), so it runs whenever the last running pass ends.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_free_memory() {
    // SAFETY: malloc_trim takes no pointer and works under glibc's own
    // arena locks; it may be called from any thread at any time. Its
    // result only says whether anything was released.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators (musl, macOS) have no such calls; nothing to do.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn limit_arenas() {}

/// Other allocators (musl, macOS) have no such calls; nothing to do.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() {}
