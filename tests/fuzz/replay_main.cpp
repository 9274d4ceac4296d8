// Replay driver for fuzz targets when libFuzzer is not in use: runs every
// file of the given corpus directories, then a fixed number of deterministic
// mutations (truncations, bit flips, length-field smashes) of each, so the
// target's parser sees malformed input in every CI run.
#include <dirent.h>
#include <sys/stat.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

std::vector<std::vector<uint8_t>> load_corpus(const std::string& dir) {
    std::vector<std::vector<uint8_t>> out;
    DIR* d = ::opendir(dir.c_str());
    if (!d) return out;
    while (dirent* e = ::readdir(d)) {
        std::string path = dir + "/" + e->d_name;
        struct stat st{};
        if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
        std::ifstream f(path, std::ios::binary);
        out.emplace_back(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    }
    ::closedir(d);
    return out;
}

void run(const std::vector<uint8_t>& v) { LLVMFuzzerTestOneInput(v.data(), v.size()); }

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::vector<uint8_t>> corpus;
    for (int i = 1; i < argc; ++i) {
        auto c = load_corpus(argv[i]);
        corpus.insert(corpus.end(), c.begin(), c.end());
    }
    corpus.push_back({});
    std::mt19937 rng(12345);
    size_t runs = 0;
    for (const auto& seed : corpus) {
        run(seed);
        ++runs;
        for (size_t cut = 0; cut < seed.size(); cut += 1 + seed.size() / 64) {
            run(std::vector<uint8_t>(seed.begin(), seed.begin() + static_cast<long>(cut)));
            ++runs;
        }
        for (int m = 0; m < 2000 && !seed.empty(); ++m) {
            auto v = seed;
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
            run(v);
            ++runs;
        }
    }
    std::printf("replayed %zu inputs from %zu seeds\n", runs, corpus.size());
    return 0;
}
