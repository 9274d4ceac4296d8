#include "snapshot/guest_memory.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>


namespace vtpm::snapshot {

namespace {

struct DirCloser {
    void operator()(DIR* d) const noexcept { closedir(d); }
};

std::string mib(uint64_t bytes) { return std::to_string(bytes >> 20) + " MiB"; }

// Map an open file read-only, remembering what it is.
Result<MemoryRegion> region_from_fd(UniqueFd fd, const std::string& name, std::optional<uint64_t> length) {
    struct stat st {};
    if (fstat(fd.get(), &st) != 0) return make_error(rc::kFail, "cannot stat " + name + ": " + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) return make_error(rc::kFail, name + " is not a regular file or memfd");
    const uint64_t len = length.value_or(static_cast<uint64_t>(st.st_size));
    if (len > static_cast<uint64_t>(st.st_size))
        return make_error(rc::kFail,
                          name + " is shorter (" + std::to_string(st.st_size) + " bytes) than QEMU's mapping");
    auto map = MappedFile::map_fd(fd.get(), len, name);
    if (!map) return map.error();
    return MemoryRegion{name, std::move(fd), std::move(*map), st.st_dev, st.st_ino};
}

bool same_inode(int fd, const MapsEntry& e) {
    struct stat st {};
    return fstat(fd, &st) == 0 && st.st_ino == e.inode && major(st.st_dev) == e.dev_major &&
           minor(st.st_dev) == e.dev_minor;
}

// Open the file behind one of QEMU's mappings, by the first way permitted.
Result<UniqueFd> open_mapped_file(pid_t pid, const MapsEntry& e, std::string& name) {
    const std::string proc = "/proc/" + std::to_string(pid);
    char range[64];
    std::snprintf(range, sizeof range, "%lx-%lx", static_cast<unsigned long>(e.start),
                  static_cast<unsigned long>(e.end));
    std::string tried;
    // 1. map_files: exactly this mapping (needs CAP_SYS_ADMIN).
    if (UniqueFd fd(::open((proc + "/map_files/" + range).c_str(), O_RDONLY | O_CLOEXEC));
        fd && same_inode(fd.get(), e)) {
        name = proc + "/map_files/" + range + " (" + e.path + ")";
        return fd;
    }
    tried = "map_files (" + std::string(std::strerror(errno)) + ")";
    // 2. QEMU's own descriptors (memfd backends keep theirs open).
    if (std::unique_ptr<DIR, DirCloser> dir(opendir((proc + "/fd").c_str())); dir) {
        while (dirent* d = readdir(dir.get())) {
            if (d->d_name[0] == '.') continue;
            const std::string p = proc + "/fd/" + d->d_name;
            struct stat st {};
            if (stat(p.c_str(), &st) != 0 || st.st_ino != e.inode || !S_ISREG(st.st_mode)) continue;
            UniqueFd fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC));
            if (fd && same_inode(fd.get(), e)) {
                name = p + " (" + e.path + ")";
                return fd;
            }
        }
        tried += ", fd (no readable descriptor of it)";
    } else {
        tried += ", fd (" + std::string(std::strerror(errno)) + ")";
    }
    // 3. The path, while the file still has it.
    if (e.path.find(" (deleted)") == std::string::npos && !e.path.empty() && e.path[0] == '/') {
        UniqueFd fd(::open(e.path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
        if (fd && same_inode(fd.get(), e)) {
            name = e.path;
            return fd;
        }
        tried += ", path (" + std::string(fd ? "another file now" : std::strerror(errno)) + ")";
    }
    return make_error(rc::kFail, "cannot open QEMU's RAM mapping " + e.path + " of pid " + std::to_string(pid) +
                                     ": tried " + tried);
}

}  // namespace

std::vector<MapsEntry> parse_maps(std::string_view text) {
    std::vector<MapsEntry> out;
    // Line by line without iostreams: a stream would link libstdc++'s
    // locale machinery into every bridge (and initialise it at each start).
    while (!text.empty()) {
        const size_t nl = text.find('\n');
        const std::string line(text.substr(0, nl));
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
        MapsEntry e;
        unsigned long long start = 0, end = 0, off = 0, ino = 0;
        char perms[8] = {};
        int path_at = 0;
        if (std::sscanf(line.c_str(), "%llx-%llx %7s %llx %x:%x %llu %n", &start, &end, perms, &off, &e.dev_major,
                        &e.dev_minor, &ino, &path_at) < 7 || end <= start || std::strlen(perms) != 4)
            continue;
        e.start = start;
        e.end = end;
        e.offset = off;
        e.inode = ino;
        e.shared = perms[3] == 's';
        if (path_at > 0 && static_cast<size_t>(path_at) <= line.size())
            e.path = line.substr(static_cast<size_t>(path_at));
        out.push_back(std::move(e));
    }
    return out;
}

std::vector<MapsEntry> guest_ram_candidates(const std::vector<MapsEntry>& maps, size_t min_bytes) {
    std::vector<MapsEntry> merged;
    for (const auto& e : maps) {
        // Device mappings (GPU, VFIO) live under /dev; RAM files may be in
        // its tmpfs and hugetlbfs mounts.
        const bool device = e.path.rfind("/dev/", 0) == 0 && e.path.rfind("/dev/shm/", 0) != 0 &&
                            e.path.rfind("/dev/hugepages", 0) != 0;
        if (!e.shared || e.inode == 0 || device || e.path.empty() || e.path[0] == '[') continue;
        // QEMU splits one RAM mapping into several VMAs (madvise, guard
        // pages): glue pieces of the same file that continue each other.
        if (!merged.empty()) {
            MapsEntry& last = merged.back();
            if (last.inode == e.inode && last.dev_major == e.dev_major && last.dev_minor == e.dev_minor &&
                last.end == e.start && last.offset + (last.end - last.start) == e.offset) {
                last.end = e.end;
                continue;
            }
        }
        merged.push_back(e);
    }
    std::vector<MapsEntry> out;
    for (auto& e : merged)
        if (e.offset == 0 && e.end - e.start >= min_bytes) out.push_back(std::move(e));
    return out;
}

Result<GuestMemory> GuestMemory::open_file(const std::string& path) {
    // Never through a symlink, and never blocking on a FIFO planted there.
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
    if (!fd) return make_error(rc::kFail, "cannot open guest memory " + path + ": " + std::strerror(errno));
    auto r = region_from_fd(std::move(fd), path, std::nullopt);
    if (!r) return r.error();
    GuestMemory m;
    m.source = path;
    m.regions.push_back(std::move(*r));
    return m;
}

namespace {

// Shared file mappings this large in QEMU are RAM backends (the smallest
// DIMM is 128 MiB, a NUMA node rarely less); smaller ones are rings and
// device windows.
constexpr size_t kOtherRamMinBytes = 2u << 20;

// The mappings of process `pid`, parsed.
Result<std::vector<MapsEntry>> read_maps(pid_t pid) {
    const std::string maps_path = "/proc/" + std::to_string(pid) + "/maps";
    // /proc files report size 0: read until the end.
    UniqueFd mfd(::open(maps_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!mfd) return make_error(rc::kFail, "cannot read " + maps_path + ": " + std::strerror(errno));
    std::string text;
    char buf[65536];
    for (ssize_t n; (n = ::read(mfd.get(), buf, sizeof buf)) > 0;) text.append(buf, static_cast<size_t>(n));
    return parse_maps(text);
}

}  // namespace

Result<void> GuestMemory::mapped_shared_by(pid_t pid) const {
    auto maps = read_maps(pid);
    if (!maps) return maps.error();
    for (const auto& r : regions) {
        const bool found = std::any_of(maps->begin(), maps->end(), [&r](const MapsEntry& e) {
            return e.shared && e.inode == r.ino && makedev(e.dev_major, e.dev_minor) == r.dev;
        });
        if (!found)
            return make_error(rc::kFail, r.name + " is not mapped shared by the control socket's peer (pid " +
                                             std::to_string(pid) + "): it is not the RAM that QEMU runs on");
    }
    return {};
}

Result<void> GuestMemory::covers_shared_ram_of(pid_t pid) const {
    if (auto m = mapped_shared_by(pid); !m) return m.error();
    auto maps = read_maps(pid);
    if (!maps) return maps.error();
    for (const auto& e : guest_ram_candidates(*maps, kOtherRamMinBytes)) {
        const bool ours = std::any_of(regions.begin(), regions.end(), [&e](const MemoryRegion& r) {
            return e.inode == r.ino && makedev(e.dev_major, e.dev_minor) == r.dev;
        });
        if (!ours)
            return make_error(rc::kFail, "QEMU (pid " + std::to_string(pid) + ") also maps shared RAM " + e.path +
                                             " (" + mib(e.end - e.start) +
                                             "), which --vm-memory path= leaves unhashed (--vm-memory peer hashes "
                                             "every shared RAM backend)");
    }
    return {};
}

Result<GuestMemory> GuestMemory::open_process(pid_t pid, size_t min_bytes) {
    auto maps = read_maps(pid);
    if (!maps) return maps.error();
    const auto candidates = guest_ram_candidates(*maps, min_bytes);
    if (candidates.empty())
        return make_error(rc::kFail, "QEMU (pid " + std::to_string(pid) +
                                         ") has no shared file-backed guest RAM (use memory-backend-file or "
                                         "memory-backend-memfd with share=on)");
    GuestMemory m;
    m.source = "QEMU pid " + std::to_string(pid);
    for (const auto& e : candidates) {
        std::string name;
        auto fd = open_mapped_file(pid, e, name);
        if (!fd) return fd.error();
        auto r = region_from_fd(std::move(*fd), name, e.end - e.start);
        if (!r) return r.error();
        m.regions.push_back(std::move(*r));
    }
    return m;
}

std::vector<MemoryView> GuestMemory::views() const {
    std::vector<MemoryView> v;
    for (const auto& r : regions)
        v.push_back({r.map.bytes(), data_extents(r.fd.get(), r.map.bytes().size()), !hashed_});
    return v;
}

uint64_t GuestMemory::page_count() const {
    uint64_t n = 0;
    for (const auto& r : regions) n += (r.map.bytes().size() + kPageSize - 1) / kPageSize;
    return n;
}

std::string GuestMemory::describe() const {
    uint64_t bytes = 0;
    for (const auto& r : regions) bytes += r.map.bytes().size();
    if (regions.size() == 1) return regions[0].name + " (" + mib(bytes) + ")";
    return std::to_string(regions.size()) + " regions of " + source + " (" + mib(bytes) + ")";
}

bool GuestMemory::pages_are_holes(uint64_t first, uint64_t count) const {
    uint64_t base = 0;
    for (const auto& r : regions) {
        const uint64_t pages = (r.map.bytes().size() + kPageSize - 1) / kPageSize;
        if (first < base + pages) {
            const off_t from = static_cast<off_t>((first - base) * kPageSize);
            const off_t to = static_cast<off_t>(std::min(first - base + count, pages) * kPageSize);
            const off_t data = lseek(r.fd.get(), from, SEEK_DATA);
            // ENXIO: no data after `from` at all.
            return (data < 0 && errno == ENXIO) || data >= to;
        }
        base += pages;
    }
    return false;
}

bool GuestMemory::same_files(const GuestMemory& o) const {
    if (regions.size() != o.regions.size()) return false;
    for (size_t i = 0; i < regions.size(); ++i) {
        const auto &a = regions[i], &b = o.regions[i];
        if (a.dev != b.dev || a.ino != b.ino || a.map.bytes().size() != b.map.bytes().size()) return false;
    }
    return true;
}

}  // namespace vtpm::snapshot
