#include "util/secure_memory.hpp"

#include <openssl/crypto.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <new>
#include <utility>
#include <vector>

#include "util/log.hpp"

namespace vtpm {
namespace {

// Live mappings, so a forked child can lock them again (relock_protected_memory).
struct Registry {
    std::mutex mu;
    std::vector<std::pair<void*, size_t>> maps;
};
Registry& registry() {
    // Built on first use, i.e. before any buffer that registers, so it is
    // destroyed after all of them.
    static Registry r;
    return r;
}

std::atomic<bool> g_lock_warned{false};

bool lock_pages(void* p, size_t len) noexcept {
    if (::mlock(p, len) == 0) return true;
    // Typically RLIMIT_MEMLOCK for an unprivileged user: the keys still work
    // and stay out of core dumps, they may just be swapped out.
    if (!g_lock_warned.exchange(true))
        VTPM_LOG_WARN("could not lock key memory (%s); key pages may be swapped out", std::strerror(errno));
    return false;
}

size_t round_to_pages(size_t n) {
    const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    return (n + page - 1) / page * page;
}

}  // namespace

ProtectedBytes::ProtectedBytes(size_t n) {
    if (n == 0) return;
    const size_t cap = round_to_pages(n);
    void* p = ::mmap(nullptr, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    // Not fatal: RLIMIT_CORE 0 and the non-dumpable flag keep cores away too.
    if (::madvise(p, cap, MADV_DONTDUMP) != 0)
        VTPM_LOG_WARN("madvise(MADV_DONTDUMP) on key memory failed: %s", std::strerror(errno));
    locked_ = lock_pages(p, cap);
    p_ = static_cast<uint8_t*>(p);
    n_ = n;
    cap_ = cap;
    Registry& r = registry();
    std::lock_guard<std::mutex> g(r.mu);
    r.maps.emplace_back(p, cap);
}

ProtectedBytes::ProtectedBytes(ByteView v) : ProtectedBytes(v.size()) {
    if (!v.empty()) std::memcpy(p_, v.data(), v.size());
}

ProtectedBytes::ProtectedBytes(ProtectedBytes&& o) noexcept
    : p_(std::exchange(o.p_, nullptr)),
      n_(std::exchange(o.n_, 0)),
      cap_(std::exchange(o.cap_, 0)),
      locked_(std::exchange(o.locked_, false)) {}

ProtectedBytes& ProtectedBytes::operator=(ProtectedBytes&& o) noexcept {
    if (this != &o) {
        release();
        p_ = std::exchange(o.p_, nullptr);
        n_ = std::exchange(o.n_, 0);
        cap_ = std::exchange(o.cap_, 0);
        locked_ = std::exchange(o.locked_, false);
    }
    return *this;
}

ProtectedBytes::~ProtectedBytes() { release(); }

void ProtectedBytes::clear() noexcept {
    if (p_) OPENSSL_cleanse(p_, cap_);
    n_ = 0;
}

void ProtectedBytes::resize(size_t n) {
    if (n <= cap_) {
        // Bytes past the size are always zero (wiped or never written), so
        // growing in place needs no fill; shrinking wipes what is cut off.
        if (n < n_) OPENSSL_cleanse(p_ + n, n_ - n);
        n_ = n;
        return;
    }
    ProtectedBytes grown(n);
    if (n_) std::memcpy(grown.p_, p_, n_);
    *this = std::move(grown);
}

void ProtectedBytes::release() noexcept {
    if (!p_) return;
    clear();
    {
        Registry& r = registry();
        std::lock_guard<std::mutex> g(r.mu);
        auto it = std::find(r.maps.begin(), r.maps.end(), std::pair<void*, size_t>(p_, cap_));
        if (it != r.maps.end()) r.maps.erase(it);
    }
    ::munlock(p_, cap_);  // also when a forked child locked pages its parent could not
    ::munmap(p_, cap_);
    p_ = nullptr;
    n_ = cap_ = 0;
    locked_ = false;
}

void relock_protected_memory() noexcept {
    Registry& r = registry();
    std::lock_guard<std::mutex> g(r.mu);
    for (const auto& [p, len] : r.maps) lock_pages(p, len);
}

}  // namespace vtpm
