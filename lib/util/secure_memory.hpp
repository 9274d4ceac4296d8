// Key material in protected memory: page-aligned anonymous mappings that are
// locked against swapping, left out of core dumps and wiped before they are
// given back. For the few bytes that must never leave the process (state and
// migration keys, passphrases); bulk plain data uses SecureBytes (bytes.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "util/bytes.hpp"

namespace vtpm {

/// A move-only byte buffer in its own mmap'ed pages: mlock'ed (if
/// RLIMIT_MEMLOCK refuses, a warning is logged once and the buffer still
/// works), madvise(MADV_DONTDUMP), wiped with OPENSSL_cleanse before
/// munlock/munmap. Allocation failure throws std::bad_alloc, as std::vector.
class ProtectedBytes {
public:
    ProtectedBytes() = default;
    /// n zero bytes.
    explicit ProtectedBytes(size_t n);
    /// A copy of v.
    explicit ProtectedBytes(ByteView v);
    ProtectedBytes(ProtectedBytes&& o) noexcept;
    /// Wipes and releases this buffer's own pages first.
    ProtectedBytes& operator=(ProtectedBytes&& o) noexcept;
    ProtectedBytes(const ProtectedBytes&) = delete;
    ProtectedBytes& operator=(const ProtectedBytes&) = delete;
    ~ProtectedBytes();

    uint8_t* data() { return p_; }
    const uint8_t* data() const { return p_; }
    size_t size() const { return n_; }
    bool empty() const { return n_ == 0; }
    /// Bytes usable without a new mapping (whole pages).
    size_t capacity() const { return cap_; }
    /// Whether mlock succeeded for the current mapping.
    bool locked() const { return locked_; }
    std::span<uint8_t> span() { return {p_, n_}; }
    ByteView view() const { return {p_, n_}; }
    operator ByteView() const { return view(); }
    uint8_t& operator[](size_t i) { return p_[i]; }
    uint8_t operator[](size_t i) const { return p_[i]; }

    /// Shrinking wipes the cut-off bytes; growing past capacity() moves the
    /// contents into a new mapping and wipes the old one. New bytes are zero.
    void resize(size_t n);
    /// Wipe every byte (the whole capacity) and set the size to 0; the
    /// mapping is kept for reuse. Destruction wipes the same way.
    void clear() noexcept;

private:
    void release() noexcept;
    uint8_t* p_ = nullptr;
    size_t n_ = 0;
    size_t cap_ = 0;
    bool locked_ = false;
};

/// Lock every live ProtectedBytes mapping again. Memory locks are not
/// inherited by fork(); a forked child that carries on with the keys (the
/// bridge's --daemon) calls this. Failures are logged as the first lock's are.
void relock_protected_memory() noexcept;

}  // namespace vtpm
