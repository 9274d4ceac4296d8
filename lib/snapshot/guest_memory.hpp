// Finding and mapping a VM's guest RAM without patching QEMU: a shared
// file-backed or memfd memory backend (`memory-backend-file,share=on`,
// `memory-backend-memfd`, libvirt `<access mode='shared'/>`) can be mapped
// read-only by another process. Two ways to find it: a path the operator
// names, or QEMU's own mappings, read from /proc/PID/maps of the peer of the
// control socket.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "snapshot/page_hasher.hpp"
#include "util/fd.hpp"
#include "vtpm/result.hpp"

namespace vtpm::snapshot {

/// One shared RAM mapping of the VM, mapped read-only in this process.
struct MemoryRegion {
    std::string name;  // path or /proc reference, for messages
    UniqueFd fd;
    MappedFile map;
    dev_t dev = 0;
    ino_t ino = 0;
};

class GuestMemory {
public:
    /// The whole of one file (a memory-backend-file mem-path).
    static Result<GuestMemory> open_file(const std::string& path);
    /// The shared file or memfd mappings of at least `min_bytes` in process
    /// `pid` (QEMU), in the order of their addresses there. Opening them
    /// needs the right to read /proc/PID/map_files (CAP_SYS_ADMIN), or
    /// /proc/PID/fd (same user as QEMU, or CAP_SYS_PTRACE), or the path
    /// itself when the file still has one.
    static Result<GuestMemory> open_process(pid_t pid, size_t min_bytes = 2u << 20);

    /// The regions with their current data extents, for hashing.
    std::vector<MemoryView> views() const;
    /// After a hash over views(): the page tables are filled, later views
    /// do not populate them again.
    void mark_hashed() { hashed_ = true; }
    uint64_t page_count() const;
    /// "/dev/shm/vm1.ram (256 MiB)" / "2 regions of QEMU pid 123 (…)".
    std::string describe() const;
    /// True when every page in [first, first+count) lies in a hole of its
    /// file (never written: RAM that has not arrived, as in post-copy).
    bool pages_are_holes(uint64_t first, uint64_t count) const;
    /// Still the same files (device, inode, size) as `o`.
    bool same_files(const GuestMemory& o) const;
    /// Whether process `pid` maps every region's file shared (same device and
    /// inode in /proc/PID/maps): a path= file is hashed only when it is the
    /// RAM QEMU runs on, not a copy left for the bridge to find.
    Result<void> mapped_shared_by(pid_t pid) const;
    /// mapped_shared_by(pid), and QEMU maps no other shared RAM file that
    /// these regions leave out (a second NUMA node's or a DIMM's backend):
    /// a RAM block left unhashed could be edited in a saved stream unseen.
    Result<void> covers_shared_ram_of(pid_t pid) const;

    std::vector<MemoryRegion> regions;
    std::string source;

private:
    bool hashed_ = false;
};

/// One line of /proc/PID/maps, the fields we use.
struct MapsEntry {
    uint64_t start = 0, end = 0, offset = 0;
    bool shared = false;
    unsigned dev_major = 0, dev_minor = 0;
    uint64_t inode = 0;
    std::string path;
};
/// Parse /proc/PID/maps text (pure; malformed lines are skipped).
std::vector<MapsEntry> parse_maps(std::string_view text);
/// Shared file mappings that look like guest RAM: offset 0, an inode, not a
/// device node, at least `min_bytes`; adjacent pieces of one file merged.
std::vector<MapsEntry> guest_ram_candidates(const std::vector<MapsEntry>& maps, size_t min_bytes);

}  // namespace vtpm::snapshot
