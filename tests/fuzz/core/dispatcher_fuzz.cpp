// Fuzz the bridge core with sequences of control messages, as a hostile or
// broken QEMU could send them: the input is framed as the socket front end
// frames it, and every message goes through the dispatcher of one engine
// (in memory, never on disk). The core must answer every message and never
// crash, whatever state the sequence leaves the TPM in.
#include <cstdlib>
#include <memory>

#include "core/dispatcher.hpp"
#include "engine/engine.hpp"
#include "store/state_store.hpp"
#include "util/log.hpp"

namespace {

vtpm::core::Dispatcher& dispatcher() {
    static std::unique_ptr<vtpm::engine::Engine> engine = [] {
        // Every rejected message would log a line: keep the run's output short.
        vtpm::log::configure(vtpm::log::Config{-1, 0, {}}, false);
        vtpm::engine::EngineConfig cfg;
        auto e = vtpm::engine::Engine::create(cfg, vtpm::store::make_memory_store());
        if (!e) std::abort();
        return std::move(*e);
    }();
    static vtpm::core::Dispatcher d(*engine, [] {
        vtpm::core::DispatcherConfig c;
        c.vendor_commands = true;
        return c;
    }());
    return d;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto& d = dispatcher();
    vtpm::ByteView rest(data, size);
    vtpm::core::TransportState ts;
    ts.data_channel_busy = true;
    int messages = 0;
    while (!rest.empty() && messages++ < 32) {
        auto f = d.framer().next(rest);
        if (f.kind == vtpm::ctrl::Frame::Kind::Incomplete) break;
        auto reply = d.handle(f, ts);
        if (reply.bytes.size() < 4) std::abort();
        if (f.kind == vtpm::ctrl::Frame::Kind::Fatal) break;
        rest = rest.subspan(f.size);
    }
    // Whatever happened, the TPM answers the data channel.
    const uint8_t probe[] = {0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x7b, 0, 8};  // GetRandom(8)
    if (d.tpm_command(vtpm::ByteView(probe, sizeof probe)).size() < 10) std::abort();
    return 0;
}
