// SHA256_Init/Update/Final are deprecated in OpenSSL 3 in favour of EVP but
// remain its fastest path for many small messages (pages, tree nodes).
#define OPENSSL_SUPPRESS_DEPRECATED
#include "snapshot/page_hasher.hpp"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <algorithm>
#include <atomic>
#include <thread>
#include <utility>

#include "util/fd.hpp"

namespace vtpm::snapshot {

Result<MappedFile> MappedFile::open(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return make_error(rc::kFail, "cannot open " + path + ": " + std::strerror(errno));
    struct stat st {};
    if (fstat(fd.get(), &st) != 0) return make_error(rc::kFail, "cannot stat " + path + ": " + std::strerror(errno));
    return map_fd(fd.get(), static_cast<size_t>(st.st_size), path);
}

Result<MappedFile> MappedFile::map_fd(int fd, size_t length, const std::string& what) {
    if (length == 0) return MappedFile(nullptr, 0);
    // No MAP_POPULATE: one thread would fill the page tables; the hashing
    // threads populate their own chunks in parallel.
    void* p = mmap(nullptr, length, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) return make_error(rc::kFail, "cannot map " + what + ": " + std::strerror(errno));
    return MappedFile(p, length);
}

MappedFile::MappedFile(MappedFile&& o) noexcept
    : addr_(std::exchange(o.addr_, nullptr)), size_(std::exchange(o.size_, 0)) {}

MappedFile::~MappedFile() {
    if (addr_) munmap(addr_, size_);
}

namespace {

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22  // Linux 5.14
#endif

// Fill the page tables for the next chunk in one call instead of a fault per
// page or two (≈ 40% of the time on a fresh mapping of shared memory). Only
// for page-aligned memory and only over data (populating a hole would
// allocate it); any failure just leaves it to the faults.
constexpr size_t kPopulateChunk = 512;  // pages: 2 MiB
void populate(ByteView mem, size_t off, size_t len) {
    const auto addr = reinterpret_cast<uintptr_t>(mem.data()) + off;
    if (addr % kPageSize || len == 0) return;
    madvise(reinterpret_cast<void*>(addr), len, MADV_POPULATE_READ);
}

// Walks the data extents alongside ascending page offsets.
class DataCursor {
public:
    explicit DataCursor(const std::optional<std::vector<Extent>>& data, uint64_t from) : data_(data) {
        if (data_) it_ = std::lower_bound(data_->begin(), data_->end(), from,
                                          [](const Extent& e, uint64_t off) { return e.end <= off; });
    }
    /// Does [off, off+len) hold any data? (Offsets must not go backwards.)
    bool any(uint64_t off, uint64_t len) {
        if (!data_) return true;
        while (it_ != data_->end() && it_->end <= off) ++it_;
        return it_ != data_->end() && it_->begin < off + len;
    }
    /// Populate the data parts of [off, off+len).
    void populate_data(ByteView mem, uint64_t off, uint64_t len) {
        if (!data_) return populate(mem, off, len);
        for (auto e = it_; e != data_->end() && e->begin < off + len; ++e) {
            const uint64_t b = std::max(off, e->begin), x = std::min(off + len, e->end);
            if (b < x) populate(mem, b, x - b);
        }
    }

private:
    const std::optional<std::vector<Extent>>& data_;
    std::vector<Extent>::const_iterator it_{};
};

// One worker: pages [first, last). SHA-256 through OpenSSL's direct
// interface: at 4 KiB a message, EVP's per-call dispatch (init, two updates,
// final through the provider) cost a tenth of the rate.
void hash_range(const MemoryView& view, size_t first, size_t last, Digest* out, const Digest& zero_leaf) {
    const ByteView mem = view.bytes;
    const uint8_t zero = 0;
    SHA256_CTX ctx;
    DataCursor data(view.data, first * kPageSize);
    for (size_t i = first; i < last; ++i) {
        const size_t off = i * kPageSize;
        const size_t len = std::min(kPageSize, mem.size() - off);
        if (view.populate && (i - first) % kPopulateChunk == 0)
            data.populate_data(mem, off, std::min(last - i, kPopulateChunk) * kPageSize);
        if (len == kPageSize && !data.any(off, len)) {
            out[i] = zero_leaf;  // a hole reads as zeros
            continue;
        }
        // Hardware prefetchers stop at page boundaries: start the next
        // page's first lines (and its TLB entry) while this one is hashed.
        if (i + 1 < last && data.any(off + kPageSize, kPageSize))
            for (size_t l = 0; l < 512; l += 64) __builtin_prefetch(mem.data() + off + kPageSize + l);
        SHA256_Init(&ctx);
        SHA256_Update(&ctx, &zero, 1);
        SHA256_Update(&ctx, mem.data() + off, len);
        SHA256_Final(out[i].data(), &ctx);
    }
    OPENSSL_cleanse(&ctx, sizeof ctx);
}

}  // namespace

Digest zero_page_leaf() {
    static const Digest leaf = merkle::leaf_hash(Bytes(kPageSize, 0));
    return leaf;
}

std::optional<std::vector<Extent>> data_extents(int fd, uint64_t length) {
    std::vector<Extent> out;
    off_t pos = 0;
    while (static_cast<uint64_t>(pos) < length) {
        const off_t d = lseek(fd, pos, SEEK_DATA);
        if (d < 0) {
            if (errno == ENXIO) break;  // only holes from here on
            return std::nullopt;        // the file system cannot tell
        }
        if (static_cast<uint64_t>(d) >= length) break;
        off_t h = lseek(fd, d, SEEK_HOLE);
        if (h < 0) return std::nullopt;
        out.push_back({static_cast<uint64_t>(d), std::min<uint64_t>(static_cast<uint64_t>(h), length)});
        pos = h;
    }
    return out;
}

PageDigests hash_pages(const MemoryView& view, unsigned threads) {
    const ByteView memory = view.bytes;
    PageDigests out;
    const size_t pages = (memory.size() + kPageSize - 1) / kPageSize;
    out.leaves.resize(pages);
    if (pages == 0) {
        out.root = merkle::merkle_root({});
        return out;
    }
    // Work in aligned blocks of kBlock pages: a block's subtree is complete
    // (or the tail), so its root is the node the whole tree has there, and
    // the tree's lower levels are built in parallel with the page hashes.
    constexpr size_t kBlock = kBlockPages;
    const size_t blocks = (pages + kBlock - 1) / kBlock;
    if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
    threads = static_cast<unsigned>(std::min<size_t>(threads, blocks));
    const Digest zero_leaf = zero_page_leaf();
    std::vector<Digest> block_roots(blocks);
    // Workers take the next block as they finish one: on a shared machine a
    // core that is slowed down must not hold up the others at the end.
    std::atomic<size_t> next{0};
    auto work = [&] {
        for (size_t b; (b = next.fetch_add(1, std::memory_order_relaxed)) < blocks;) {
            const size_t from = b * kBlock, n = std::min(kBlock, pages - from);
            hash_range(view, from, from + n, out.leaves.data(), zero_leaf);
            block_roots[b] = merkle::merkle_root(std::span<const Digest>(out.leaves).subspan(from, n));
        }
    };
    std::vector<std::thread> workers;
    for (unsigned t = 1; t < threads; ++t) workers.emplace_back(work);
    work();
    for (auto& w : workers) w.join();
    out.root = merkle::merkle_root(block_roots);
    out.block_roots = std::move(block_roots);
    return out;
}

PageDigests hash_regions(std::span<const MemoryView> regions, unsigned threads) {
    if (regions.size() == 1) return hash_pages(regions[0], threads);
    PageDigests out;
    for (const MemoryView& r : regions) {
        PageDigests part = hash_pages(r, threads);
        out.leaves.insert(out.leaves.end(), part.leaves.begin(), part.leaves.end());
    }
    const size_t pages = out.leaves.size();
    for (size_t from = 0; from < pages; from += kBlockPages)
        out.block_roots.push_back(merkle::merkle_root(
            std::span<const Digest>(out.leaves).subspan(from, std::min(kBlockPages, pages - from))));
    out.root = merkle::merkle_root(out.block_roots);
    return out;
}

}  // namespace vtpm::snapshot
