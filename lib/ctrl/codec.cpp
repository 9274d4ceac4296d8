// Request framing and decoding (control-channel.md §2-§6).
#include "ctrl/codec.hpp"

#include <string>

namespace vtpm::ctrl {
namespace {

struct CmdInfo {
    const char* name;
    int body;  // fixed body size; -1 = variable (see frame_size)
};

// Index = command code; 0 is unused.
constexpr CmdInfo kCmds[] = {
    {"unknown", 0},
    {"CMD_GET_CAPABILITY", 0},
    {"CMD_INIT", 4},
    {"CMD_SHUTDOWN", 0},
    {"CMD_GET_TPMESTABLISHED", 0},
    {"CMD_SET_LOCALITY", 4},
    {"CMD_HASH_START", 0},
    {"CMD_HASH_DATA", -1},
    {"CMD_HASH_END", 0},
    {"CMD_CANCEL_TPM_CMD", 0},
    {"CMD_STORE_VOLATILE", 0},
    {"CMD_RESET_TPMESTABLISHED", 4},
    {"CMD_GET_STATEBLOB", 12},
    {"CMD_SET_STATEBLOB", -1},
    {"CMD_STOP", 0},
    {"CMD_GET_CONFIG", 0},
    {"CMD_SET_DATAFD", 0},
    {"CMD_SET_BUFFERSIZE", 4},
    {"CMD_GET_INFO", 16},
    {"CMD_LOCK_STORAGE", 4},
};
constexpr uint32_t kMaxCode = static_cast<uint32_t>(Cmd::LockStorage);

Error bad_size(uint32_t code, const char* expect, size_t got) {
    return make_error(rc::kBadParameter, std::string(kCmds[code].name) + ": body must be " + expect + ", got " +
                                             std::to_string(got) + " bytes");
}

}  // namespace

std::string_view cmd_name(uint32_t code) { return code >= 1 && code <= kMaxCode ? kCmds[code].name : "unknown"; }

// The protocol has no length prefix. swtpm takes one message per read of up
// to 4104 bytes and reads on (for 500 ms) only until it has the bytes a
// command needs: 4 for most, 8 for INIT, 5 for SET_LOCALITY and
// RESET_TPMESTABLISHED (a 1-byte locality), 16 for GET_STATEBLOB, the
// announced length for HASH_DATA and SET_STATEBLOB. Whatever else that
// read brought is part of the message, and decode_request judges it as
// swtpm does (exact-size commands refuse it, the others ignore it).
std::optional<size_t> frame_size(ByteView prefix, bool vendor) {
    if (prefix.size() < 4) return std::nullopt;
    uint32_t code = load_be32(prefix.data());
    if (vendor && code == static_cast<uint32_t>(Cmd::VtpmTpmCommand)) {
        if (prefix.size() < 8) return std::nullopt;
        const uint32_t len = load_be32(prefix.data() + 4);
        return len > kMaxVendorTpmCommand ? 8 : 8 + size_t{len};
    }
    if (vendor && code == static_cast<uint32_t>(Cmd::VtpmRamDigest)) return 4 + kRamDigestBody;
    if (vendor && code == static_cast<uint32_t>(Cmd::VtpmSnapshot)) return 4;
    if (vendor && code == static_cast<uint32_t>(Cmd::VtpmVerifyRam)) return 4;
    if (code < 1 || code > kMaxCode) return 4;
    switch (static_cast<Cmd>(code)) {
    case Cmd::Init: return 8;
    case Cmd::SetLocality:
    case Cmd::ResetTpmEstablished: return 5;
    case Cmd::GetStateBlob: return 16;
    case Cmd::HashData:
        if (prefix.size() < 8) return std::nullopt;
        return 8 + size_t{load_be32(prefix.data() + 4)};
    case Cmd::SetStateBlob: {
        if (prefix.size() < 16) return std::nullopt;
        uint32_t len = load_be32(prefix.data() + 12);
        if (len > kMaxStateBlob) return 16;  // decode reports the error; the payload is not read
        return 16 + size_t{len};
    }
    default:
        return 4;  // the code alone; a body comes in the same read
    }
}

Result<Request> decode_request(ByteView msg, bool lock_storage_supported, bool vendor_supported) {
    if (msg.size() < 4) return make_error(rc::kBadParameter, "control message shorter than its 4-byte code");
    const uint32_t code = load_be32(msg.data());
    if (vendor_supported && code == static_cast<uint32_t>(Cmd::VtpmTpmCommand)) {
        if (msg.size() < 8) return make_error(rc::kBadParameter, "CMD_VTPM_TPM_COMMAND: no length field");
        const uint32_t len = load_be32(msg.data() + 4);
        if (len > kMaxVendorTpmCommand || len < 10)
            return make_error(rc::kBadParameter, "CMD_VTPM_TPM_COMMAND: a TPM command of " + std::to_string(len) +
                                                     " bytes is not allowed (10 to " +
                                                     std::to_string(kMaxVendorTpmCommand) + ")");
        if (msg.size() - 8 != len)
            return make_error(rc::kBadParameter, "CMD_VTPM_TPM_COMMAND: length field says " + std::to_string(len) +
                                                     " bytes, message has " + std::to_string(msg.size() - 8));
        return Request{VendorTpmCommandReq{msg.subspan(8)}};
    }
    if (vendor_supported && code == static_cast<uint32_t>(Cmd::VtpmRamDigest)) {
        if (msg.size() != 4 + kRamDigestBody)
            return make_error(rc::kBadParameter, "CMD_VTPM_RAM_DIGEST: body must be " + std::to_string(kRamDigestBody) +
                                                     " bytes, got " + std::to_string(msg.size() - 4));
        const uint8_t* p = msg.data() + 4;
        VendorRamDigestReq r;
        r.phase = load_be32(p);
        r.hash_alg = load_be32(p + 4);
        r.page_size = load_be32(p + 8);
        r.page_count = load_be64(p + 12);
        std::copy(p + 20, p + 52, r.root.begin());
        if (r.phase < 1 || r.phase > 3)
            return make_error(rc::kBadParameter, "CMD_VTPM_RAM_DIGEST: phase " + std::to_string(r.phase) +
                                                     " is not 1 (save), 2 (restore) or 3 (incoming stream complete)");
        if (r.hash_alg != 0x000B || r.page_size != 4096)
            return make_error(rc::kBadParameter, "CMD_VTPM_RAM_DIGEST: only SHA-256 over 4096-byte pages is supported");
        return Request{r};
    }
    if (vendor_supported && code == static_cast<uint32_t>(Cmd::VtpmSnapshot)) {
        if (msg.size() != 4)
            return make_error(rc::kBadParameter, "CMD_VTPM_SNAPSHOT: body must be empty, got " +
                                                     std::to_string(msg.size() - 4) + " bytes");
        return Request{VendorSnapshotReq{}};
    }
    if (vendor_supported && code == static_cast<uint32_t>(Cmd::VtpmVerifyRam)) {
        if (msg.size() != 4)
            return make_error(rc::kBadParameter, "CMD_VTPM_VERIFY_RAM: body must be empty, got " +
                                                     std::to_string(msg.size() - 4) + " bytes");
        return Request{VendorVerifyRamReq{}};
    }
    if (code < 1 || code > kMaxCode || (code == static_cast<uint32_t>(Cmd::LockStorage) && !lock_storage_supported))
        return make_error(rc::kBadOrdinal, "unknown control command " + hex32(code));
    ByteView body = msg.subspan(4);
    const size_t n = body.size();
    const uint8_t* p = body.data();
    auto exact = [&](size_t want) -> bool { return n == want; };

    switch (static_cast<Cmd>(code)) {
    // Bytes past what GET_CAPABILITY, SET_LOCALITY, RESET_TPMESTABLISHED,
    // GET_STATEBLOB, SET_DATAFD, SET_BUFFERSIZE and GET_INFO use are
    // ignored, as swtpm does; the other commands refuse them.
    case Cmd::GetCapability:
        return Request{GetCapabilityReq{}};
    case Cmd::Init:
        if (!exact(4)) return bad_size(code, "4 bytes", n);
        return Request{InitReq{load_be32(p)}};
    case Cmd::Shutdown:
        if (!exact(0)) return bad_size(code, "empty", n);
        return Request{ShutdownReq{}};
    case Cmd::GetTpmEstablished:
        if (!exact(0)) return bad_size(code, "empty", n);
        return Request{GetTpmEstablishedReq{}};
    case Cmd::SetLocality:
        // QEMU sends 4 bytes, tpm2-tss 1: only the first byte counts.
        if (n < 1) return bad_size(code, "at least 1 byte", n);
        return Request{SetLocalityReq{p[0]}};
    case Cmd::HashStart:
        if (!exact(0)) return bad_size(code, "empty", n);
        return Request{HashStartReq{}};
    case Cmd::HashData: {
        if (n < 4) return bad_size(code, "a 4-byte length and data", n);
        uint32_t len = load_be32(p);
        if (n - 4 != len)
            return make_error(rc::kBadParameter, "CMD_HASH_DATA: length field says " + std::to_string(len) +
                                                     " bytes, message has " + std::to_string(n - 4));
        return Request{HashDataReq{body.subspan(4)}};
    }
    case Cmd::HashEnd:
        if (!exact(0)) return bad_size(code, "empty", n);
        return Request{HashEndReq{}};
    case Cmd::CancelTpmCmd:
        if (!exact(0)) return bad_size(code, "empty", n);
        return Request{CancelTpmCmdReq{}};
    case Cmd::StoreVolatile:
        if (!exact(0)) return bad_size(code, "empty", n);
        return Request{StoreVolatileReq{}};
    case Cmd::ResetTpmEstablished:
        if (n < 1) return bad_size(code, "at least 1 byte", n);
        return Request{ResetTpmEstablishedReq{p[0]}};
    case Cmd::GetStateBlob:
        if (n < 12) return bad_size(code, "at least 12 bytes", n);
        return Request{GetStateBlobReq{load_be32(p), load_be32(p + 4), load_be32(p + 8)}};
    case Cmd::SetStateBlob: {
        if (n < 12) return bad_size(code, "a 12-byte header and data", n);
        uint32_t len = load_be32(p + 8);
        if (len > kMaxStateBlob)
            return make_error(rc::kFail, "CMD_SET_STATEBLOB: blob of " + std::to_string(len) +
                                             " bytes exceeds the limit of " + std::to_string(kMaxStateBlob));
        if (n - 12 != len)
            return make_error(rc::kBadParameter, "CMD_SET_STATEBLOB: length field says " + std::to_string(len) +
                                                     " bytes, message has " + std::to_string(n - 12));
        return Request{SetStateBlobReq{load_be32(p), load_be32(p + 4), body.subspan(12)}};
    }
    case Cmd::Stop:
        if (!exact(0)) return bad_size(code, "empty", n);
        return Request{StopReq{}};
    case Cmd::GetConfig:
        if (!exact(0)) return bad_size(code, "empty", n);
        return Request{GetConfigReq{}};
    case Cmd::SetDataFd:
        return Request{SetDataFdReq{}};
    case Cmd::SetBufferSize:
        if (n < 4) return bad_size(code, "at least 4 bytes", n);
        return Request{SetBufferSizeReq{load_be32(p)}};
    case Cmd::GetInfo:
        if (n < 16) return bad_size(code, "at least 16 bytes", n);
        return Request{GetInfoReq{load_be64(p), load_be32(p + 8)}};
    case Cmd::LockStorage:
        if (!exact(4)) return bad_size(code, "4 bytes", n);
        return Request{LockStorageReq{load_be32(p)}};
    case Cmd::VtpmTpmCommand:
    case Cmd::VtpmRamDigest:
    case Cmd::VtpmSnapshot:
    case Cmd::VtpmVerifyRam:
        break;  // handled above when enabled
    }
    return make_error(rc::kBadOrdinal, "unknown control command " + hex32(code));
}

}  // namespace vtpm::ctrl
