// Fuzz the data channel: arbitrary bytes as TPM commands (raw, TCG-prefixed,
// in-band locality) into a running in-process libtpms.
#include <stdlib.h>

#include <memory>

#include "engine/engine.hpp"
#include "store/state_store.hpp"

namespace {
vtpm::engine::Engine& engine() {
    static std::unique_ptr<vtpm::engine::Engine> e = [] {
        // State in memory: a fuzz run leaves nothing behind.
        vtpm::engine::EngineConfig cfg;
        cfg.allow_set_locality = true;
        auto r = vtpm::engine::Engine::create(cfg, vtpm::store::make_memory_store());
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
