// Fuzz the data channel: arbitrary bytes as TPM commands (raw, TCG-prefixed,
// in-band locality) into a running in-process libtpms.
#include <stdlib.h>

#include <filesystem>
#include <memory>

#include "engine/engine.hpp"

namespace {
vtpm::engine::Engine& engine() {
    static std::unique_ptr<vtpm::engine::Engine> e = [] {
        char tmpl[] = "/tmp/vtpm-fuzz-XXXXXX";
        std::string dir = ::mkdtemp(tmpl);
        std::atexit([] {});
        vtpm::engine::EngineConfig cfg;
        cfg.allow_set_locality = true;
        auto r = vtpm::engine::Engine::create(cfg, vtpm::store::make_dir_store(dir, true, 0600, std::nullopt));
        if (!r || !(*r)->init(false) || !(*r)->startup(0)) std::abort();
        return std::move(*r);
    }();
    return *e;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size > 4096 + 9) return 0;
    vtpm::Bytes rsp = engine().command(vtpm::ByteView(data, size));
    if (rsp.size() < 10) abort();
    return 0;
}
