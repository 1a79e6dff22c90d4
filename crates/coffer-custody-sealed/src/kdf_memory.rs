//! Argon2id's working memory, mapped for one derivation and unmapped after it.
//!
//! Argon2id at the default cost fills 19 MiB. Through the allocator that memory came
//! from glibc's per-thread arenas (its mmap threshold grows after the first free of a
//! large block), and each blocking thread that ran a guess kept its 19 MiB: 64
//! concurrent wrong passphrases left a sealed server at gigabytes. An anonymous
//! mapping is given back to the kernel by `munmap` the moment the derivation ends,
//! whatever the allocator does, and the kernel zero-fills pages it hands out, so the
//! blocks start defined.

#![allow(
    unsafe_code,
    reason = "an anonymous mapping viewed as argon2 blocks: mmap and munmap have no safe wrapper"
)]

use std::ptr::{NonNull, null_mut};

use argon2::Block;
use coffer_core::CustodyError;
use rustix::mm::{MapFlags, ProtFlags, mmap_anonymous, munmap};
use zeroize::Zeroize;

/// `count` Argon2 blocks in a private anonymous mapping, zeroed and unmapped on drop.
pub(crate) struct KdfMemory {
    blocks: NonNull<Block>,
    count: usize,
}

impl KdfMemory {
    pub(crate) fn map(count: usize) -> Result<Self, CustodyError> {
        let len = Self::byte_len(count)?;
        // SAFETY: a fresh private anonymous mapping aliases nothing; the kernel
        // zero-fills it, and all-zero bytes are a valid `Block` (`[u64; 128]`); the
        // mapping is page-aligned, beyond `Block`'s 64-byte alignment.
        let ptr = unsafe {
            mmap_anonymous(
                null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
        }
        .map_err(|_| CustodyError::Backend("mapping argon2id memory"))?;
        let blocks = NonNull::new(ptr.cast::<Block>())
            .ok_or(CustodyError::Backend("mapping argon2id memory"))?;
        Ok(Self { blocks, count })
    }

    fn byte_len(count: usize) -> Result<usize, CustodyError> {
        count
            .checked_mul(Block::SIZE)
            .filter(|&len| len > 0)
            .ok_or_else(|| CustodyError::Config("argon2id memory size out of range".into()))
    }
}

impl AsMut<[Block]> for KdfMemory {
    fn as_mut(&mut self) -> &mut [Block] {
        // SAFETY: `count` initialised blocks live at `blocks` until drop, and `&mut
        // self` makes this the only view.
        unsafe { std::slice::from_raw_parts_mut(self.blocks.as_ptr(), self.count) }
    }
}

impl Drop for KdfMemory {
    fn drop(&mut self) {
        // Derived from the passphrase: wiped before the pages go back.
        self.as_mut().iter_mut().for_each(Zeroize::zeroize);
        if let Ok(len) = Self::byte_len(self.count) {
            // SAFETY: the mapping made in `map`, of this length, unmapped once; no
            // reference into it outlives `&mut self`.
            let _ = unsafe { munmap(self.blocks.as_ptr().cast(), len) };
        }
    }
}

// The mapping is owned exclusively, like a `Box<[Block]>`.
// SAFETY: no shared state; moving the owner between threads moves the only access.
unsafe impl Send for KdfMemory {}
