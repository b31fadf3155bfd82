//! Open-addressing tables read at random places, for the few tables every row of an ingest touches:
//! the parsers' key caches and the stager's sets of event-id digests. Both hold 128-bit XXH3 digests
//! (never 0, the mark of an empty slot) and probe linearly from the digest's home slot, so a lookup is one
//! cache miss, which a prefetch can start early.

/// Types whose all-zero bytes are a valid, empty slot.
///
/// # Safety
/// The all-zero bit pattern must be a valid value of the type.
pub unsafe trait Zeroable: Copy + Default {}

// SAFETY: 0 is a u128.
unsafe impl Zeroable for u128 {}

/// The size of a transparent huge page (x86_64, aarch64 with 4 KiB pages): tables of at least this many
/// bytes get a mapping of their own, in whole huge pages.
#[cfg(target_os = "linux")]
const HUGE: usize = 2 << 20;

/// Zeroed (empty) slots. A large table gets memory of its own, asked for as transparent huge pages
/// (Linux): every row reads the table at a random place, and with 4 KiB pages nearly every lookup also
/// missed the TLB, a page walk that is dear on a virtual machine (main.rs leaves huge pages to the memory
/// that asks for them). Unless fresh huge pages prove dearer still: see [`advise_huge_pages`].
pub enum Slots<T: Zeroable> {
    Heap(Vec<T>),
    #[cfg(target_os = "linux")]
    Mapped {
        ptr: std::ptr::NonNull<T>,
        len: usize,
        bytes: usize,
    },
}

// SAFETY: `Mapped` owns its mapping as a Vec owns its buffer; nothing else refers to it.
#[cfg(target_os = "linux")]
unsafe impl<T: Zeroable + Send> Send for Slots<T> {}

impl<T: Zeroable> Slots<T> {
    /// The bytes of a mapping of `len` slots: whole huge pages.
    #[cfg(target_os = "linux")]
    fn mapping_bytes(len: usize) -> usize {
        (len * std::mem::size_of::<T>()).div_ceil(HUGE) * HUGE
    }

    pub fn zeroed(len: usize) -> Slots<T> {
        #[cfg(target_os = "linux")]
        {
            if len * std::mem::size_of::<T>() >= HUGE {
                let bytes = Self::mapping_bytes(len);
                // On failure the heap is used instead.
                if let Some(p) = anonymous_mapping(bytes) {
                    // SAFETY: a fresh private anonymous mapping of `bytes`, zero-filled by the kernel (and
                    // all-zero is an empty slot: `Zeroable`).
                    unsafe { advise_huge_pages(p.as_ptr(), 0, bytes) };
                    return Slots::Mapped {
                        ptr: p.cast(),
                        len,
                        bytes,
                    };
                }
            }
        }
        Slots::Heap(vec![T::default(); len])
    }

    /// Grows to `len` slots, keeping the slots there are and adding zeroed ones after them. A mapped table
    /// is moved by the kernel without a copy (`mremap`) and only its new pages are fresh memory, which the
    /// kernel clears on first touch: dear on a virtual machine (a 10M-row bill's table of event-id digests
    /// grew by doubling into new mappings, clearing 512 MB where the table ends at 256).
    pub fn grow_zeroed(&mut self, len: usize) {
        if len <= self.len() {
            return;
        }
        #[cfg(target_os = "linux")]
        if let Slots::Mapped {
            ptr,
            len: old_len,
            bytes,
        } = self
        {
            let want = Self::mapping_bytes(len);
            // SAFETY: the mapping is ours (made by `zeroed` with `bytes`); on success the old address is no
            // longer used, on failure (MAP_FAILED) it is left as it was.
            unsafe {
                let p = libc::mremap(ptr.as_ptr().cast(), *bytes, want, libc::MREMAP_MAYMOVE);
                if p != libc::MAP_FAILED {
                    if let Some(moved) = std::ptr::NonNull::new(p.cast::<T>()) {
                        advise_huge_pages(p.cast(), *bytes, want);
                        *ptr = moved;
                        *old_len = len;
                        *bytes = want;
                        return;
                    }
                }
            }
        }
        let mut grown = Slots::zeroed(len);
        grown[..self.len()].copy_from_slice(self);
        *self = grown;
    }

    /// Starts fetching the memory of slot `i` (a hint: nothing is read).
    pub fn prefetch(&self, i: usize) {
        crate::prefetch::prefetch(self, i);
    }
}

/// A new private anonymous mapping of `bytes` (zero-filled, untouched), if the kernel gives one.
#[cfg(target_os = "linux")]
fn anonymous_mapping(bytes: usize) -> Option<std::ptr::NonNull<u8>> {
    // SAFETY: a new mapping at an address the kernel chooses touches no memory of ours.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return None;
    }
    std::ptr::NonNull::new(p.cast())
}

/// A fresh huge page's first touch (fault and clear) that takes longer than this, in the thread's CPU
/// time, is taken as a sign that fresh huge pages are dear here: a few tenths of a millisecond is the
/// clearing of 2 MiB; on this VM 10-20 ms when the host has taken the memory back (see below).
#[cfg(target_os = "linux")]
const DEAR_HUGE_PAGE: std::time::Duration = std::time::Duration::from_millis(2);

/// Asks for transparent huge pages for the mapping at `base` (`to` bytes, of which `from..to` are fresh:
/// all zero, never touched), unless the first huge page among the fresh bytes proves dear: then the
/// mapping's later faults get 4 KiB pages. The advice covers the whole mapping either way, so that it
/// stays one mapping the kernel can move and extend (`mremap`).
///
/// Why: a virtual machine whose guest reports free memory to its host (free page reporting, in blocks of
/// 2 MiB and more) gets every huge page from memory the host has taken back, and the first touch of each
/// is a fault on the host as well: 10-20 ms a huge page here after an idle spell, against a few tenths of
/// a millisecond right after another process freed memory (the host still backs it). 4 KiB pages mostly
/// come from the smaller free blocks, which are never reported. A 10M-row bill's 256 MiB event-id set:
/// 1-2 s of CPU in fresh huge pages when cold; in 4 KiB pages about 0.6 s more in TLB misses instead.
///
/// # Safety
/// `base..base + to` must be a private anonymous mapping of ours, `from..to` of it untouched.
#[cfg(target_os = "linux")]
unsafe fn advise_huge_pages(base: *mut u8, from: usize, to: usize) {
    advise_huge_pages_unless(base, from, to, DEAR_HUGE_PAGE);
}

/// [`advise_huge_pages`], with the first fresh huge page dear above `dear`.
///
/// # Safety
/// As for [`advise_huge_pages`].
#[cfg(target_os = "linux")]
unsafe fn advise_huge_pages_unless(base: *mut u8, from: usize, to: usize, dear: std::time::Duration) {
    libc::madvise(base.cast(), to, libc::MADV_HUGEPAGE);
    // The first whole huge page of the fresh bytes, if there is one besides it to decide for.
    let fresh = base.add(from);
    let first = fresh.add(fresh.align_offset(HUGE));
    if first.add(2 * HUGE) > base.add(to) {
        return;
    }
    let before = thread_cpu_time();
    // Writes the zero the byte holds: the kernel faults in (and clears) the page around it.
    std::ptr::write_volatile(first, 0);
    if thread_cpu_time().saturating_sub(before) > dear {
        libc::madvise(base.cast(), to, libc::MADV_NOHUGEPAGE);
    }
}

/// The process's memory mappings as `/proc/self/smaps` lists them: each one's addresses and `VmFlags`
/// (`hg` for huge pages asked for, `nh` for none). Empty if the file cannot be read.
#[cfg(target_os = "linux")]
pub fn mappings() -> Vec<(std::ops::Range<usize>, Vec<String>)> {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let mut range: Option<std::ops::Range<usize>> = None;
    for line in smaps.lines() {
        let head = line.split(' ').next().unwrap_or("");
        if let Some((a, b)) = head.split_once('-') {
            if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) {
                range = Some(a..b);
                continue;
            }
        }
        if let Some(flags) = line.strip_prefix("VmFlags:") {
            if let Some(r) = range.take() {
                found.push((r, flags.split_whitespace().map(str::to_string).collect()));
            }
        }
    }
    found
}

/// The calling thread's CPU time (a fault's time on the host counts, time spent waiting does not).
#[cfg(target_os = "linux")]
fn thread_cpu_time() -> std::time::Duration {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe {
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t);
    }
    std::time::Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

impl<T: Zeroable> std::ops::Deref for Slots<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match self {
            Slots::Heap(v) => v,
            // SAFETY: the mapping holds `len` initialised (zeroed or written) slots for as long as self.
            #[cfg(target_os = "linux")]
            Slots::Mapped { ptr, len, .. } => unsafe { std::slice::from_raw_parts(ptr.as_ptr(), *len) },
        }
    }
}

impl<T: Zeroable> std::ops::DerefMut for Slots<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match self {
            Slots::Heap(v) => v,
            // SAFETY: as in deref, and `&mut self` makes this the only reference.
            #[cfg(target_os = "linux")]
            Slots::Mapped { ptr, len, .. } => unsafe { std::slice::from_raw_parts_mut(ptr.as_ptr(), *len) },
        }
    }
}

impl<T: Zeroable> Drop for Slots<T> {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        if let Slots::Mapped { ptr, bytes, .. } = self {
            // SAFETY: the mapping was made by `zeroed` with this size and is not used after this.
            unsafe {
                libc::munmap(ptr.as_ptr().cast(), *bytes);
            }
        }
    }
}

/// How far ahead of the digest being inserted [`DigestSet::insert_all`] prefetches: enough misses in
/// flight to hide the memory's latency.
const AHEAD: usize = 16;

/// Slots past the last home slot, where a run of taken slots goes on instead of wrapping round to the
/// first: a table without wrap-around grows in place (see [`DigestSet::reserve`]). At most 3/4 full, a run
/// of more than a thousand slots is about as likely as a chance collision of digests; were it needed,
/// the slots go on growing by this many.
const OVERFLOW: usize = 4096;

/// A set of digests (never 0), at most 3/4 full: 16 bytes a slot, for about the memory of a `HashSet`
/// (which is fuller, but keeps a control byte a slot), where the stager keeps a set for each month. Ids
/// (event ids of one month, or customer keys) as 128-bit XXH3 digests: 16 bytes each and no allocation
/// per id, so the sets stay in memory for a whole run (a chance collision among 10^8 ids is about
/// 10^-23). A digest's home slot is its low bits; it is stored in the first free slot from there on.
pub struct DigestSet {
    slots: Slots<u128>,
    /// Home slots (a power of two); `slots` has `OVERFLOW` or more after them.
    homes: usize,
    len: usize,
}

impl Default for DigestSet {
    fn default() -> Self {
        let homes = 1 << 10;
        DigestSet {
            slots: Slots::zeroed(homes + OVERFLOW),
            homes,
            len: 0,
        }
    }
}

impl DigestSet {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digests it holds without growing.
    pub fn capacity(&self) -> usize {
        Self::holds(self.homes)
    }

    /// The digests a table of `homes` home slots holds: it is kept at most three quarters full.
    fn holds(homes: usize) -> usize {
        homes / 4 * 3
    }

    /// Adds a digest; `true` if it was not there.
    pub fn insert(&mut self, digest: u128) -> bool {
        self.reserve(1);
        self.insert_in_room(digest)
    }

    /// Adds each digest in turn (0: no id, never added), prefetching the slots of those ahead; for each,
    /// whether it was new (not there, and not earlier in `digests`).
    pub fn insert_all(&mut self, digests: &[u128]) -> Vec<bool> {
        self.reserve(digests.len());
        let mask = self.homes - 1;
        let mut fresh = Vec::with_capacity(digests.len());
        for (n, &d) in digests.iter().enumerate() {
            if let Some(&ahead) = digests.get(n + AHEAD) {
                self.slots.prefetch(ahead as usize & mask);
            }
            fresh.push(d != 0 && self.insert_in_room(d));
        }
        fresh
    }

    /// Makes room for `more` digests without growing on the way. The table grows in place: its slots are
    /// extended (zeroed), and the digests of the old home slots are taken out and put back in one pass
    /// from the first slot on, then those of the old overflow. A digest's new home is its old one or one
    /// in the new slots, so one put back lands at or before the slot just emptied, or among the new slots
    /// (which held nothing of the old table after the overflow was taken out): no digest is moved past one
    /// not yet put back, and every run from a home to its digest stays unbroken.
    pub fn reserve(&mut self, more: usize) {
        let need = self.len.saturating_add(more);
        let mut homes = self.homes;
        while need > Self::holds(homes) {
            homes *= 2;
        }
        if homes == self.homes {
            return;
        }
        let old_homes = self.homes;
        let overflow: Vec<u128> = self.slots[old_homes..]
            .iter_mut()
            .filter(|d| **d != 0)
            .map(std::mem::take)
            .collect();
        self.slots.grow_zeroed(homes + OVERFLOW);
        self.homes = homes;
        for i in 0..old_homes {
            let d = std::mem::take(&mut self.slots[i]);
            if d != 0 {
                self.put(d);
            }
        }
        for d in overflow {
            self.put(d);
        }
    }

    fn insert_in_room(&mut self, digest: u128) -> bool {
        let mut i = digest as usize & (self.homes - 1);
        loop {
            if i == self.slots.len() {
                self.slots.grow_zeroed(i + OVERFLOW);
            }
            match self.slots[i] {
                0 => {
                    self.slots[i] = digest;
                    self.len += 1;
                    return true;
                }
                d if d == digest => return false,
                _ => i += 1,
            }
        }
    }

    /// Puts back a digest taken out while growing (not in the table, counted in `len`).
    fn put(&mut self, digest: u128) {
        self.len -= 1;
        self.insert_in_room(digest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The set answers as a HashSet does, across growth (heap and mapped tables), batches with repeats
    /// inside them, and the no-id digest 0.
    #[test]
    fn digest_set_is_a_set() {
        let mut set = DigestSet::default();
        let mut reference = std::collections::HashSet::new();
        let mut next = crate::analytics::testing::pseudo_random(17);
        for round in 0..40 {
            let batch: Vec<u128> = (0..(round * 997))
                .map(|i| {
                    // 64 random bits from three draws of 31, 31 and 2.
                    let n = next(1 << 31) << 33 | next(1 << 31) << 2 | next(4);
                    match i % 11 {
                        0 => 0,
                        // Repeats: ids from a small range, within and across batches.
                        1..=3 => u128::from(n % 5000) + 1,
                        _ => (u128::from(n) << 64 | u128::from(n.rotate_left(17))) | 1,
                    }
                })
                .collect();
            let fresh = if round % 2 == 0 {
                set.insert_all(&batch)
            } else {
                batch.iter().map(|&d| d != 0 && set.insert(d)).collect()
            };
            let expected: Vec<bool> = batch.iter().map(|&d| d != 0 && reference.insert(d)).collect();
            assert_eq!(fresh, expected, "round {round}");
            assert_eq!(set.len(), reference.len());
        }
        assert!(set.slots.len() * 16 > 2 << 20, "grew past the mapped size");
    }

    /// Huge pages or not, the advice covers the whole mapping: it stays one mapping (which `mremap` can
    /// extend, as a table grows), all zero but for nothing, and grows with its bytes kept.
    #[cfg(target_os = "linux")]
    #[test]
    fn huge_page_advice_covers_the_whole_mapping() {
        // The VmFlags of each mapping over `start..start + len`.
        let flags_over = |start: usize, len: usize| -> Vec<Vec<String>> {
            mappings()
                .into_iter()
                .filter(|(r, _)| r.start < start + len && start < r.end)
                .map(|(_, flags)| flags)
                .collect()
        };
        for (dear, flag) in [(std::time::Duration::ZERO, "nh"), (std::time::Duration::MAX, "hg")] {
            let bytes = 6 * HUGE;
            let base = anonymous_mapping(bytes).expect("a mapping").as_ptr();
            // SAFETY: a fresh private anonymous mapping of `bytes`, advised, read, grown and unmapped here
            // alone.
            unsafe {
                advise_huge_pages_unless(base, 0, bytes, dear);
                let flags = flags_over(base as usize, bytes);
                assert_eq!(flags.len(), 1, "one mapping: {flags:?}");
                assert!(flags[0].iter().any(|f| f == flag), "{flag} in {:?}", flags[0]);
                assert!(std::slice::from_raw_parts(base, bytes).iter().all(|&b| b == 0));
                *base.add(bytes - 1) = 7;
                let q = libc::mremap(base.cast(), bytes, 2 * bytes, libc::MREMAP_MAYMOVE);
                assert_ne!(q, libc::MAP_FAILED, "grown as one mapping");
                let grown = q.cast::<u8>();
                advise_huge_pages_unless(grown, bytes, 2 * bytes, dear);
                assert_eq!(flags_over(grown as usize, 2 * bytes).len(), 1);
                let all = std::slice::from_raw_parts(grown, 2 * bytes);
                assert_eq!(all[bytes - 1], 7);
                assert!(all.iter().enumerate().all(|(i, &b)| b == 0 || i == bytes - 1));
                libc::munmap(q, 2 * bytes);
            }
        }
    }

    /// Digests whose home is the last slot at every size (low bits all ones): their run goes past the
    /// overflow slots, which are extended, and is moved as the table grows in place (heap, then mapped),
    /// among random digests. Each is found again, and the set answers as a HashSet does.
    #[test]
    fn runs_past_the_last_home_and_growth_in_place_keep_every_digest() {
        let mut set = DigestSet::default();
        let mut reference = std::collections::HashSet::new();
        let mut next = crate::analytics::testing::pseudo_random(5);
        let mut all = Vec::new();
        for round in 0..30u128 {
            let batch: Vec<u128> = (0..(round as usize * 2000))
                .map(|i| {
                    let n: u64 = next(1 << 31) << 33 | next(1 << 31) << 2 | next(4);
                    if round <= 3 && i % 2 == 0 {
                        // 6,000 of them, more than the overflow slots (each is put after all the others).
                        (round << 96 | (i as u128) << 32) | 0xffff_ffff // home: the last slot
                    } else {
                        u128::from(n) << 64 | u128::from(n.rotate_left(29)) | 1
                    }
                })
                .collect();
            let fresh = set.insert_all(&batch);
            let expected: Vec<bool> = batch.iter().map(|&d| reference.insert(d)).collect();
            assert_eq!(fresh, expected, "round {round}");
            assert_eq!(set.len(), reference.len());
            all.extend(batch);
        }
        assert!(set.slots.len() > set.homes + OVERFLOW, "the overflow was extended");
        assert!(set.slots.len() * 16 > 2 << 20, "grew past the mapped size");
        // Every digest is there: found again, none added.
        assert!(set.insert_all(&all).iter().all(|&fresh| !fresh));
        assert_eq!(set.len(), reference.len());
        // Each run from a home to its digest is unbroken: found where a lookup stops.
        let mask = set.homes - 1;
        for &d in &all {
            let mut i = d as usize & mask;
            while set.slots[i] != d {
                assert_ne!(set.slots[i], 0, "{d:x}: an empty slot before it");
                i += 1;
            }
        }
    }
}
