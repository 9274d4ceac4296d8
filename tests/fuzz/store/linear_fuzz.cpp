// Fuzz swtpm's file:// ("linear") image as the bridge opens and then writes
// it: arbitrary bytes as the image, then every read the engine does and the
// writes of an NV update (a crafted section length must never place a blob
// outside the image). The image lives in a private directory on /dev/shm
// (fsync there is cheap), removed at exit; the run scripts put that directory
// inside one they remove themselves (VTPM_FUZZ_SHM), because libFuzzer ends
// on SIGINT/SIGTERM (a timeout, ^C) without running exit handlers.
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "store/state_file.hpp"
#include "store/state_store.hpp"
#include "util/fd.hpp"

namespace {

const std::string& image_path() {
    static const std::string path = [] {
        const char* parent = std::getenv("VTPM_FUZZ_SHM");
        std::string tmpl = std::string(parent && *parent ? parent : "/dev/shm") + "/vtpm-fuzz-linear-XXXXXX";
        if (!::mkdtemp(tmpl.data())) std::abort();
        static std::string dir = tmpl;
        std::atexit([] { std::filesystem::remove_all(dir); });
        return dir + "/tpm.state";
    }();
    return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string& path = image_path();
    {
        vtpm::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
        if (!fd || (size && ::write(fd.get(), data, size) != static_cast<ssize_t>(size))) std::abort();
    }
    auto st = vtpm::store::open_store("file://" + path, true, 0600, std::nullopt);
    if (!st) return 0;
    if (!(*st)->lock()) return 0;
    if (auto l = (*st)->list()) {
        for (const auto& e : *l) {
            auto b = (*st)->load_raw(e.name);
            if (b && b->size() > size) std::abort();
        }
    }
    for (std::string_view name : {vtpm::store::kPermall, vtpm::store::kVolatile, vtpm::store::kSavestate}) {
        (void)(*st)->load(name);
    }
    // The writes of an NV update: one that fits a (claimed) section, one that
    // outgrows it, and a removal that compacts the image.
    const vtpm::Bytes small(40, 0x5a), large(3000, 0xa5);
    if ((*st)->store(vtpm::store::kPermall, small)) {
        auto back = (*st)->load(vtpm::store::kPermall);
        if (!back || back->size() != small.size()) std::abort();
    }
    (void)(*st)->store(vtpm::store::kVolatile, large);
    (void)(*st)->remove(vtpm::store::kSavestate, false);
    (void)(*st)->remove(vtpm::store::kPermall, false);
    return 0;
}
