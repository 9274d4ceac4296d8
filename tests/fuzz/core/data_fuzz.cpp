// Fuzz the data channel as the bridge core serves it: the input is a script
// of operations a guest and a (hostile or broken) QEMU could interleave —
// stream chunks split anywhere, which the core frames as the socket front
// end does (Dispatcher::take_tpm_command: raw or TCG-prefixed, several
// commands per chunk, partial commands); whole TPM commands at a chosen
// locality; real commands (Startup, GetRandom, PCR_Extend, ...) so that the
// TPM gets past TPM_RC_INITIALIZE; control commands (SET_LOCALITY, INIT,
// STOP, GET/SET_STATEBLOB, RESET_TPMESTABLISHED, CANCEL, hashing, ...).
// One engine per process (libtpms is a global singleton), state in memory
// only; every input starts from the same pristine permanent state.
//
// Script: repeated [op][operands]; a short input reads zeros past its end.
//   op & 7 == 0  stream chunk: u16 length, bytes (appended, then framed)
//   op & 7 == 1  real command: u8 which, u8 argument; op bit 3: TCG prefix
//                (u8 locality), bit 4: send it split in two stream chunks
//                (u8 where), bit 5: through tpm_command instead of the stream
//   op & 7 == 2  raw command: u16 length, bytes; bit 3 TCG prefix (u8
//                locality), bit 4: the header's size field made right
//   op & 7 == 3  control command: u8 which, operands (see control())
//   op & 7 == 4  in-band TPM2_SetLocality vendor command: u8 locality
//   op & 7 == 5  new data connection: the partial command buffered is dropped
//   op & 7 == 6  CMD_VTPM_TPM_COMMAND with a real command (u8 which, u8 argument)
//   op & 7 == 7  CMD_INIT (bit 3: delete volatile) and TPM2_Startup(CLEAR)
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>

#include "core/dispatcher.hpp"
#include "engine/engine.hpp"
#include "store/state_store.hpp"
#include "tpm/commands.hpp"
#include "util/log.hpp"

namespace {

using vtpm::Bytes;
using vtpm::ByteView;
using vtpm::ctrl::Cmd;
namespace core = vtpm::core;
namespace engine = vtpm::engine;
namespace tpm = vtpm::tpm;

void check(bool ok) {
    if (!ok) std::abort();
}

// Reads the script; past the end every read is zero, so every prefix of an
// input is a valid script.
struct Reader {
    const uint8_t* p;
    size_t n;
    bool empty() const { return n == 0; }
    uint8_t u8() {
        if (n == 0) return 0;
        --n;
        return *p++;
    }
    uint16_t u16() { return static_cast<uint16_t>(u8() << 8 | u8()); }
    ByteView bytes(size_t want) {
        size_t k = want < n ? want : n;
        ByteView v(p, k);
        p += k;
        n -= k;
        return v;
    }
};

struct Process {
    std::unique_ptr<engine::Engine> engine;
    Bytes pristine;         // the permanent state every input starts from
    uint32_t buffer_size;   // libtpms' default, restored after SET_BUFFERSIZE
    bool blobs_set = false; // the last input sent SET_STATEBLOB
};

Process& process() {
    static Process p = [] {
        // Every refused command would log a line: keep the run's output short.
        vtpm::log::configure(vtpm::log::Config{-1, 0, {}}, false);
        engine::EngineConfig cfg;
        cfg.allow_set_locality = true;
        // Each TPM2_Shutdown makes libtpms marshal its whole NV through large
        // reallocs, which ASan serves with mmap/munmap: sent at every reset
        // it alone kept the target under 40 exec/s. Inputs still send it.
        cfg.auto_shutdown = false;
        auto e = engine::Engine::create(cfg, vtpm::store::make_memory_store());
        if (!e || !(*e)->init(false) || !(*e)->startup(0)) std::abort();
        (void)(*e)->command(tpm::shutdown(1));  // the permanent state is written to the store
        (*e)->stop();
        auto perm = (*e)->store().load(vtpm::store::kPermall);
        auto bs = (*e)->buffer_size(0);
        if (!perm || !bs) std::abort();
        return Process{std::move(*e), Bytes(perm->view().begin(), perm->view().end()), bs->size, false};
    }();
    return p;
}

// Back to the pristine TPM, powered on, locality 0: cheap (no manufacture)
// and the same for every input, so a crash replays alone.
void reset(Process& p) {
    engine::Engine& e = *p.engine;
    e.stop();
    if (p.blobs_set) {
        // Blobs a SET_STATEBLOB left for an INIT that never came: an INIT takes
        // them (setting them empty would not do: empty is a state of its own).
        (void)e.init(false);
        e.stop();
        p.blobs_set = false;
    }
    auto& s = e.store();
    check(s.remove(vtpm::store::kVolatile, false) && s.remove(vtpm::store::kSavestate, false) &&
          s.store(vtpm::store::kPermall, p.pristine));
    check(static_cast<bool>(e.buffer_size(p.buffer_size)));
    check(static_cast<bool>(e.set_locality(0)));
    check(static_cast<bool>(e.init(false)));
}

uint32_t be32(const uint8_t* b) {
    return uint32_t{b[0]} << 24 | uint32_t{b[1]} << 16 | uint32_t{b[2]} << 8 | b[3];
}

// A response as the data channel sends it: a complete TPM response whose
// header size is its length, inside the TCG frame when the command had one.
void check_response(ByteView rsp, bool prefixed) {
    if (prefixed) {
        check(rsp.size() >= 18 && be32(rsp.data()) == rsp.size() - 8 && be32(rsp.data() + rsp.size() - 4) == 0);
        rsp = rsp.subspan(4, rsp.size() - 8);
    }
    check(rsp.size() >= 10 && be32(rsp.data() + 2) == rsp.size());
}

// The real commands: enough of them for the TPM to do work (and PCRs whose
// rules depend on the locality).
Bytes real_command(uint8_t which, uint8_t arg) {
    TPML_PCR_SELECTION sel{};
    sel.count = 1;
    sel.pcrSelections[0].hash = TPM2_ALG_SHA256;
    sel.pcrSelections[0].sizeofSelect = 3;
    switch (which % 10) {
    case 0: return tpm::startup(arg & 1);
    case 1: return tpm::shutdown(arg & 1);
    case 2: return tpm::get_random(arg);
    case 3: return tpm::get_capability(TPM2_CAP_TPM_PROPERTIES, TPM2_PT_FIXED + arg, 8);
    case 4: return tpm::get_capability(arg % 10, 0, 4);
    case 5: {
        TPML_DIGEST_VALUES d{};
        d.count = 1;
        d.digests[0].hashAlg = TPM2_ALG_SHA256;
        std::memset(&d.digests[0].digest, arg, 32);
        return tpm::pcr_extend(arg % 24, d);
    }
    case 6:
        sel.pcrSelections[0].pcrSelect[arg % 3] = static_cast<uint8_t>(arg | 1);
        return tpm::pcr_read(sel);
    case 7: {
        // TPM2_PCR_Reset(pcr): allowed for PCR 16 and 23 at locality 0,
        // 17-22 only at higher localities.
        const uint8_t cmd[] = {0x80, 0x02, 0, 0, 0, 0x1b, 0, 0, 0x01, 0x3d, 0, 0, 0, static_cast<uint8_t>(arg % 24),
                               0, 0, 0, 9, 0x40, 0, 0, 9, 0, 0, 0, 0, 0};
        return Bytes(cmd, cmd + sizeof cmd);
    }
    case 8: {
        const uint8_t cmd[] = {0x80, 0x01, 0, 0, 0, 0x0a, 0, 0, 0x01, 0x81};  // TPM2_ReadClock
        return Bytes(cmd, cmd + sizeof cmd);
    }
    default: {
        const uint8_t cmd[] = {0x80, 0x01, 0, 0, 0, 0x0b, 0, 0, 0x01, 0x43, static_cast<uint8_t>(arg & 1)};  // SelfTest
        return Bytes(cmd, cmd + sizeof cmd);
    }
    }
}

Bytes with_prefix(ByteView cmd, uint8_t locality) {
    Bytes out;
    vtpm::put_be32(out, 8);
    out.push_back(locality);
    vtpm::put_be32(out, static_cast<uint32_t>(cmd.size()));
    out.insert(out.end(), cmd.begin(), cmd.end());
    return out;
}

class Session {
public:
    explicit Session(engine::Engine& e) : e_(e), d_(e, [] {
        core::DispatcherConfig c;
        c.vendor_commands = true;
        return c;
    }()) {}

    // Bytes arriving on the data channel: frame and answer what is complete.
    void stream(ByteView chunk) {
        buf_.insert(buf_.end(), chunk.begin(), chunk.end());
        for (;;) {
            const bool prefixed = tpm::has_send_command_prefix(buf_);
            const uint8_t loc = buf_.size() > 4 ? buf_[4] : 0;
            const size_t before = buf_.size();
            // rsp_ keeps the last response's bytes and capacity, as the
            // socket front end's buffer does.
            const size_t used = d_.take_tpm_command(buf_, rsp_);
            if (used == 0) break;
            buf_.erase(buf_.begin(), buf_.begin() + static_cast<long>(used));
            check(buf_.size() < before);
            check_response(rsp_, prefixed);
            if (prefixed && loc <= 4) check(e_.locality() == loc);
        }
        // A stream never makes the core buffer more than one command.
        check(buf_.size() < core::kMaxTpmCommand);
    }

    // A whole command the way a front end hands it over.
    void command(ByteView cmd) {
        check_response(d_.tpm_command(cmd), tpm::has_send_command_prefix(cmd));
    }

    void new_connection() { buf_.clear(); }

    core::Reply control(Cmd code, const vtpm::ctrl::Request& req) {
        core::Reply r = d_.handle(static_cast<uint32_t>(code), req, ts_);
        check(r.bytes.size() >= 4);
        return r;
    }

    void control(Reader& in);

private:
    engine::Engine& e_;
    core::Dispatcher d_;
    core::TransportState ts_{-1, true};
    Bytes buf_;
    Bytes rsp_;
    // State blobs handed out by GET_STATEBLOB, for a later SET_STATEBLOB.
    struct Blob {
        uint32_t flags = 0;
        Bytes bytes;
    };
    Blob blobs_[4];
};

void Session::control(Reader& in) {
    namespace c = vtpm::ctrl;
    switch (in.u8() % 16) {
    case 0: control(Cmd::Init, c::InitReq{in.u8() & 1u}); break;
    case 1: control(Cmd::Stop, c::StopReq{}); break;
    case 2: {
        const uint8_t before = e_.locality(), loc = in.u8();
        const bool ok = be32(control(Cmd::SetLocality, c::SetLocalityReq{loc}).bytes.data()) == 0;
        check(ok == (loc <= 4) && e_.locality() == (ok ? loc : before));
        break;
    }
    case 3: {
        const uint32_t type = in.u8() % 4, flags = in.u8() & 1, offset = in.u8();
        core::Reply r = control(Cmd::GetStateBlob, c::GetStateBlobReq{flags, type, offset});
        // u32 result, u32 flags, u32 total, u32 length, blob
        if (offset == 0 && r.bytes.size() >= 16 && be32(r.bytes.data()) == 0) {
            check(be32(r.bytes.data() + 12) == r.bytes.size() - 16);
            blobs_[type] = Blob{be32(r.bytes.data() + 4), Bytes(r.bytes.begin() + 16, r.bytes.end())};
        }
        break;
    }
    case 4: {
        const uint32_t type = in.u8() % 4;
        Blob b = blobs_[type];
        const uint8_t edit = in.u8();
        const uint16_t where = in.u16();
        // Bit 0: damage one byte (our decoder and libtpms must refuse it, not crash).
        if ((edit & 1) && !b.bytes.empty()) b.bytes[where % b.bytes.size()] ^= static_cast<uint8_t>(edit | 1);
        if (edit & 2) b.bytes.resize(where % (b.bytes.size() + 1));
        process().blobs_set = true;
        control(Cmd::SetStateBlob, c::SetStateBlobReq{b.flags, type, b.bytes});
        break;
    }
    case 5: control(Cmd::ResetTpmEstablished, c::ResetTpmEstablishedReq{in.u8()}); break;
    case 6: control(Cmd::CancelTpmCmd, c::CancelTpmCmdReq{}); break;
    case 7: control(Cmd::GetTpmEstablished, c::GetTpmEstablishedReq{}); break;
    case 8: control(Cmd::HashStart, c::HashStartReq{}); break;
    case 9: control(Cmd::HashData, c::HashDataReq{in.bytes(in.u8())}); break;
    case 10: control(Cmd::HashEnd, c::HashEndReq{}); break;
    case 11: control(Cmd::StoreVolatile, c::StoreVolatileReq{}); break;
    case 12: control(Cmd::SetBufferSize, c::SetBufferSizeReq{in.u16()}); break;
    case 13: control(Cmd::GetCapability, c::GetCapabilityReq{}); break;
    case 14: control(Cmd::GetInfo, c::GetInfoReq{in.u8(), in.u16()}); break;
    default: control(Cmd::Shutdown, c::ShutdownReq{}); break;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Process& p = process();
    reset(p);
    Session s(*p.engine);
    Reader in{data, size};
    for (int ops = 0; !in.empty() && ops < 64; ++ops) {
        const uint8_t op = in.u8();
        switch (op & 7) {
        case 0: s.stream(in.bytes(in.u16())); break;
        case 1: {
            const uint8_t which = in.u8(), arg = in.u8();
            Bytes cmd = real_command(which, arg);
            if (op & 0x08) cmd = with_prefix(cmd, in.u8());
            if (op & 0x20) {
                s.command(cmd);
            } else if (op & 0x10) {
                const size_t cut = in.u8() % (cmd.size() + 1);
                s.stream(ByteView(cmd).first(cut));
                s.stream(ByteView(cmd).subspan(cut));
            } else {
                s.stream(cmd);
            }
            break;
        }
        case 2: {
            Bytes cmd = [&] {
                ByteView v = in.bytes(in.u16());
                return Bytes(v.begin(), v.end());
            }();
            if ((op & 0x10) && cmd.size() >= 6) {
                const uint32_t n = static_cast<uint32_t>(cmd.size());
                for (int i = 0; i < 4; ++i) cmd[2 + i] = static_cast<uint8_t>(n >> (24 - 8 * i));
            }
            if (op & 0x08) cmd = with_prefix(cmd, in.u8());
            s.command(cmd);
            break;
        }
        case 3: s.control(in); break;
        case 4: {
            const uint8_t cmd[] = {0x80, 0x01, 0, 0, 0, 0x0b, 0x20, 0x00, 0x10, 0x00, in.u8()};
            s.stream(ByteView(cmd, sizeof cmd));
            break;
        }
        case 5: s.new_connection(); break;
        case 6: {
            const uint8_t which = in.u8(), arg = in.u8();
            Bytes cmd = real_command(which, arg);
            s.control(Cmd::VtpmTpmCommand, vtpm::ctrl::VendorTpmCommandReq{cmd});
            break;
        }
        default:
            s.control(Cmd::Init, vtpm::ctrl::InitReq{(op >> 3) & 1u});
            s.command(tpm::startup(0));
            break;
        }
    }
    // Whatever happened, the TPM answers the data channel.
    s.new_connection();
    s.stream(tpm::get_random(8));
    return 0;
}
