// vtpm-snapshot-bench: guest-RAM hashing throughput (issue 5) against the
// machine's SHA-256 rate measured in the same run by
// `openssl speed -evp sha256 -bytes 4096 -multi <cores>`.
// Guest RAM is a memfd (as QEMU's memory-backend-memfd), filled, then hashed
// through a read-only mapping of /proc/self/fd/N, as the bridge maps it.
//   vtpm-snapshot-bench [MiB ...]     (default 256 1024 4096)
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "snapshot/page_hasher.hpp"
#include "util/fd.hpp"

using namespace vtpm;

namespace {

// Bytes per second over all cores, from openssl's summary line "sha256 NNNk".
double openssl_rate(unsigned cores, int seconds) {
    const std::string cmd = "openssl speed -evp sha256 -bytes 4096 -seconds " + std::to_string(seconds) + " -multi " +
                            std::to_string(cores) + " 2>/dev/null";
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return 0;
    char line[512];
    double rate = 0;
    while (std::fgets(line, sizeof line, p))
        if (std::strncmp(line, "sha256", 6) == 0) rate = std::atof(line + 6) * 1000.0;  // "k" = 1000 bytes
    pclose(p);
    return rate;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<size_t> sizes_mib;
    for (int i = 1; i < argc; ++i) sizes_mib.push_back(std::strtoul(argv[i], nullptr, 10));
    if (sizes_mib.empty()) sizes_mib = {256, 1024, 4096};
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    // The machine is shared and noisy: each size runs rounds of openssl's
    // rate then ours, back to back, and reports the median of the per-round
    // ratios with their range.
    std::printf("rounds of `openssl speed -evp sha256 -bytes 4096 -seconds 1 -multi %u` then our hash, median ratio\n",
                cores);
    std::printf("%-10s %10s %10s %10s %8s %12s %10s %12s\n", "guest RAM", "warm ms", "GB/s", "openssl", "ratio",
                "range", "ms/GiB", "cold ms/GiB");
    for (size_t mib : sizes_mib) {
        const size_t size = mib << 20;
        UniqueFd fd(memfd_create("guest-ram", MFD_CLOEXEC));
        if (!fd || ftruncate(fd.get(), static_cast<off_t>(size)) != 0) return std::perror("memfd"), 1;
        void* w = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
        if (w == MAP_FAILED) return std::perror("mmap"), 1;
        auto* words = static_cast<uint64_t*>(w);
        for (size_t i = 0; i < size / 8; ++i) words[i] = i * 0x9e3779b97f4a7c15ull;  // not zero pages
        munmap(w, size);
        // Cold: map and hash once (the kernel fills the page tables). Warm:
        // the mapping kept, as the bridge keeps guest RAM mapped while the VM runs.
        auto t0 = std::chrono::steady_clock::now();
        auto m = snapshot::MappedFile::open("/proc/self/fd/" + std::to_string(fd.get()));
        if (!m) return std::fprintf(stderr, "%s\n", m.error().message.c_str()), 1;
        auto first = snapshot::hash_pages(m->bytes());
        const double cold = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        if (first.leaves.size() != size / snapshot::kPageSize) return 1;
        std::vector<double> ms, refs, ratios;
        for (int r = 0; r < 5; ++r) {
            const double ref = openssl_rate(cores, 1);
            auto t = std::chrono::steady_clock::now();
            // Warm: the page tables are filled (as the bridge's guard knows
            // of the mapping it keeps).
            auto d = snapshot::hash_pages(snapshot::MemoryView{m->bytes(), std::nullopt, false});
            const double took = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
            if (d.root != first.root) return std::fprintf(stderr, "unstable root\n"), 1;
            ms.push_back(took);
            refs.push_back(ref);
            ratios.push_back(ref > 0 ? static_cast<double>(size) / (took / 1e3) / ref : 0);
        }
        auto median = [](std::vector<double> v) { std::sort(v.begin(), v.end()); return v[v.size() / 2]; };
        const double mid = median(ms);
        const double gib = static_cast<double>(mib) / 1024.0;
        std::printf("%6zu MiB %10.1f %10.2f %10.2f %8.2f %5.2f-%-6.2f %10.0f %12.0f\n", mib, mid,
                    static_cast<double>(size) / (mid / 1e3) / 1e9, median(refs) / 1e9, median(ratios),
                    *std::min_element(ratios.begin(), ratios.end()), *std::max_element(ratios.begin(), ratios.end()),
                    mid / gib, cold / gib);
    }
    return 0;
}
