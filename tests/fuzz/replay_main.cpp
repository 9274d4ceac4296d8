// Replay driver for fuzz targets when libFuzzer is not in use: runs every
// file of the given corpus directories (in name order), then deterministic
// mutations (truncations, bit flips, length-field smashes) of each, so the
// target's parser sees malformed input in every CI run.
//   - An empty corpus is an error: a missing seed directory must not pass.
//   - The mutation seed comes from VTPM_FUZZ_SEED (printed; default 12345),
//     so a failure is reproduced by running again with the printed seed.
//   - When an input crashes the target, it is written to
//     ./fuzz-crash-<target>-<seed>.bin (the working directory, meson's build
//     directory under `meson test`) and named on stderr.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

struct Seed {
    std::string name;
    std::vector<uint8_t> bytes;
};

std::vector<Seed> load_corpus(const std::string& dir) {
    std::vector<Seed> out;
    DIR* d = ::opendir(dir.c_str());
    if (!d) {
        std::fprintf(stderr, "fuzz replay: cannot open corpus directory %s: %s\n", dir.c_str(), std::strerror(errno));
        std::exit(1);
    }
    while (dirent* e = ::readdir(d)) {
        std::string path = dir + "/" + e->d_name;
        struct stat st{};
        if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
        std::ifstream f(path, std::ios::binary);
        out.push_back({path, std::vector<uint8_t>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>())});
    }
    ::closedir(d);
    std::sort(out.begin(), out.end(), [](const Seed& a, const Seed& b) { return a.name < b.name; });
    return out;
}

// The input under test, for the crash handler (async-signal-safe use only).
const std::vector<uint8_t>* g_current = nullptr;
char g_crash_path[512];
char g_describe[1024];

void on_crash(int sig) {
    if (g_current) {
        int fd = ::open(g_crash_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) {
            ssize_t w = ::write(fd, g_current->data(), g_current->size());
            (void)w;
            ::close(fd);
        }
        ssize_t w = ::write(2, g_describe, std::strlen(g_describe));
        (void)w;
    }
    std::signal(sig, SIG_DFL);
    std::raise(sig);
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<Seed> corpus;
    for (int i = 1; i < argc; ++i) {
        auto c = load_corpus(argv[i]);
        corpus.insert(corpus.end(), c.begin(), c.end());
    }
    if (corpus.empty()) {
        std::fprintf(stderr, "fuzz replay: no seed inputs in the corpus directories given: nothing would be tested\n");
        return 1;
    }
    corpus.push_back({"(empty input)", {}});
    const char* env = std::getenv("VTPM_FUZZ_SEED");
    const unsigned long seed = env && *env ? std::strtoul(env, nullptr, 10) : 12345;
    const char* slash = std::strrchr(argv[0], '/');
    const std::string target = slash ? slash + 1 : argv[0];
    std::printf("fuzz replay: %s, %zu seed inputs, VTPM_FUZZ_SEED=%lu\n", target.c_str(), corpus.size(), seed);
    std::fflush(stdout);
    std::snprintf(g_crash_path, sizeof g_crash_path, "fuzz-crash-%s-%lu.bin", target.c_str(), seed);
    for (int sig : {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL}) std::signal(sig, on_crash);

    std::mt19937 rng(static_cast<uint32_t>(seed));
    size_t runs = 0;
    auto run = [&](const std::vector<uint8_t>& v, const std::string& what) {
        g_current = &v;
        std::snprintf(g_describe, sizeof g_describe, "fuzz replay: the target crashed on %s (%zu bytes), saved as %s\n",
                      what.c_str(), v.size(), g_crash_path);
        LLVMFuzzerTestOneInput(v.data(), v.size());
        g_current = nullptr;
        ++runs;
    };
    for (const auto& s : corpus) {
        run(s.bytes, s.name);
        for (size_t cut = 0; cut < s.bytes.size(); cut += 1 + s.bytes.size() / 64)
            run(std::vector<uint8_t>(s.bytes.begin(), s.bytes.begin() + static_cast<long>(cut)),
                s.name + " cut at " + std::to_string(cut));
        for (int m = 0; m < 2000 && !s.bytes.empty(); ++m) {
            auto v = s.bytes;
            int edits = 1 + static_cast<int>(rng() % 4);
            for (int k = 0; k < edits; ++k) {
                size_t pos = rng() % v.size();
                switch (rng() % 4) {
                    case 0: v[pos] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;
                    case 1: v[pos] = 0xff; break;
                    case 2: v[pos] = 0x00; break;
                    default: v.insert(v.begin() + static_cast<long>(pos), static_cast<uint8_t>(rng())); break;
                }
            }
            run(v, s.name + " mutation " + std::to_string(m));
        }
    }
    std::printf("replayed %zu inputs from %zu seeds\n", runs, corpus.size());
    return 0;
}
