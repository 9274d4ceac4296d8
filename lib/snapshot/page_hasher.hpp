// Hashing guest RAM: SHA-256 leaf hashes of every 4 KiB page and their
// Merkle root, on all cores, reading the memory through a read-only mapping
// (a shared file-backed or memfd memory backend of QEMU).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "merkle/merkle.hpp"
#include "util/bytes.hpp"
#include "vtpm/result.hpp"

namespace vtpm::snapshot {

inline constexpr size_t kPageSize = 4096;
/// Pages per block: blocks are complete subtrees of the Merkle tree, hashed
/// in parallel, and their roots let a restore name the region that differs.
inline constexpr size_t kBlockPages = 1024;

struct PageDigests {
    std::vector<Digest> leaves;       // one per page; a short last page is hashed as it is
    std::vector<Digest> block_roots;  // one per kBlockPages pages (the last may be shorter)
    Digest root{};
};

/// A read-only private view of a file (unmapped when destroyed).
class MappedFile {
public:
    static Result<MappedFile> open(const std::string& path);
    /// Map the first `length` bytes of an open file read-only.
    static Result<MappedFile> map_fd(int fd, size_t length, const std::string& what);
    MappedFile(MappedFile&& o) noexcept;
    MappedFile& operator=(MappedFile&&) = delete;
    MappedFile(const MappedFile&) = delete;
    ~MappedFile();
    ByteView bytes() const { return ByteView(static_cast<const uint8_t*>(addr_), size_); }

private:
    MappedFile(void* addr, size_t size) : addr_(addr), size_(size) {}
    void* addr_ = nullptr;
    size_t size_ = 0;
};

/// The leaf hash of a 4 KiB page of zeros (a hole, or RAM not there yet).
Digest zero_page_leaf();

/// A byte range [begin, end) of a file that holds data.
struct Extent {
    uint64_t begin = 0, end = 0;
};

/// Memory to hash, and where its file has data: pages outside every extent
/// are holes, read as zeros without being touched (reading a tmpfs hole
/// through a mapping would allocate it). No extents: all of it is data.
struct MemoryView {
    ByteView bytes;
    std::optional<std::vector<Extent>> data;
    /// Fill the page tables chunk by chunk ahead of the hashing (a fresh
    /// mapping). On a mapping hashed before they are filled, and walking
    /// them again costs a tenth of the rate.
    bool populate = true;
};

/// Leaf hashes and root of `memory`, split over `threads` workers (0: one
/// per online CPU).
PageDigests hash_pages(const MemoryView& memory, unsigned threads = 0);
inline PageDigests hash_pages(ByteView memory, unsigned threads = 0) {
    return hash_pages(MemoryView{memory, std::nullopt}, threads);
}

/// The same over several regions taken as one page sequence (guest RAM in
/// more than one backend). One region takes the parallel path; with more,
/// the blocks are rebuilt from the concatenated leaves.
PageDigests hash_regions(std::span<const MemoryView> regions, unsigned threads = 0);

/// The data extents of an open file (SEEK_DATA/SEEK_HOLE), nullopt when the
/// file system cannot tell.
std::optional<std::vector<Extent>> data_extents(int fd, uint64_t length);

}  // namespace vtpm::snapshot
