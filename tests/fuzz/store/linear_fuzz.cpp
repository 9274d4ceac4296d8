// Fuzz swtpm's file:// ("linear") image as the bridge opens it: arbitrary
// bytes as the image (a memfd, never a file on disk), then every read the
// engine does. Nothing may crash, and a read either fails cleanly or
// returns a blob inside the image.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "store/state_file.hpp"
#include "store/state_store.hpp"
#include "util/fd.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    vtpm::UniqueFd fd(::memfd_create("linear-fuzz", MFD_CLOEXEC));
    if (!fd) std::abort();
    if (size && ::write(fd.get(), data, size) != static_cast<ssize_t>(size)) std::abort();
    const std::string uri = "file:///proc/self/fd/" + std::to_string(fd.get());
    auto st = vtpm::store::open_store(uri, true, 0600, std::nullopt);
    if (!st) return 0;
    (void)(*st)->lock();
    if (auto l = (*st)->list()) {
        for (const auto& e : *l) {
            auto b = (*st)->load_raw(e.name);
            if (b && b->size() > size) std::abort();
        }
    }
    for (std::string_view name : {vtpm::store::kPermall, vtpm::store::kVolatile, vtpm::store::kSavestate}) {
        (void)(*st)->load(name);
        (void)(*st)->load_raw(name);
    }
    return 0;
}
