#include "ctrl/ptm_ioctl.hpp"

#include <cstring>

namespace vtpm::ctrl {

namespace {

// _IOC(dir, 'P', nr, size) on Linux: dir bits 30-31 (1 write, 2 read), size
// bits 16-29, type bits 8-15, number bits 0-7.
constexpr uint32_t ioc(uint32_t dir, uint32_t nr, uint32_t size) { return dir << 30 | size << 16 | 'P' << 8 | nr; }
constexpr uint32_t kRead = 2, kReadWrite = 3;

constexpr PtmIoctl kIoctls[] = {
    {ioc(kRead, 0, 8), Cmd::GetCapability, 8},
    {ioc(kReadWrite, 1, 4), Cmd::Init, 4},
    {ioc(kRead, 2, 4), Cmd::Shutdown, 4},
    {ioc(kRead, 3, 8), Cmd::GetTpmEstablished, 8},
    {ioc(kReadWrite, 4, 4), Cmd::SetLocality, 4},
    {ioc(kRead, 5, 4), Cmd::HashStart, 4},
    {ioc(kReadWrite, 6, 4100), Cmd::HashData, 4100},
    {ioc(kRead, 7, 4), Cmd::HashEnd, 4},
    {ioc(kRead, 8, 4), Cmd::CancelTpmCmd, 4},
    {ioc(kRead, 9, 4), Cmd::StoreVolatile, 4},
    {ioc(kReadWrite, 10, 4), Cmd::ResetTpmEstablished, 4},
    {ioc(kReadWrite, 11, 3088), Cmd::GetStateBlob, 3088},
    {ioc(kReadWrite, 12, 3084), Cmd::SetStateBlob, 3084},
    {ioc(kRead, 13, 4), Cmd::Stop, 4},
    {ioc(kRead, 14, 8), Cmd::GetConfig, 8},
    {ioc(kRead, 15, 4), Cmd::SetDataFd, 4},
    {ioc(kReadWrite, 16, 16), Cmd::SetBufferSize, 16},
    {ioc(kReadWrite, 17, 3088), Cmd::GetInfo, 3088},
};

uint32_t host32(ByteView b, size_t off) {
    uint32_t v = 0;
    std::memcpy(&v, b.data() + off, 4);
    return v;
}

void put_host32(Bytes& out, size_t off, uint32_t v) { std::memcpy(out.data() + off, &v, 4); }

Bytes message(Cmd cmd) {
    Bytes m;
    put_be32(m, static_cast<uint32_t>(cmd));
    return m;
}

}  // namespace

std::optional<PtmIoctl> ptm_ioctl(uint32_t request) {
    for (const auto& io : kIoctls)
        if (io.request == request) return io;
    return std::nullopt;
}

uint32_t ptm_request(Cmd cmd) {
    for (const auto& io : kIoctls)
        if (io.cmd == cmd) return io.request;
    return 0;
}

Bytes ptm_result(uint32_t result) {
    Bytes out(4);
    put_host32(out, 0, result);
    return out;
}

Result<Bytes> ptm_to_message(const PtmIoctl& io, ByteView in) {
    Bytes m = message(io.cmd);
    // Write-direction ioctls: the kernel copied the whole struct in.
    const bool has_input = io.request >> 30 & 1;
    if (has_input && in.size() < io.size) return make_error(rc::kBadParameter, "ioctl input shorter than its struct");
    switch (io.cmd) {
        case Cmd::Init: put_be32(m, host32(in, 0)); break;
        case Cmd::SetLocality:
        case Cmd::ResetTpmEstablished:
            // QEMU's 4-byte form of the locality byte.
            m.insert(m.end(), {in[0], 0, 0, 0});
            break;
        case Cmd::HashData: {
            const uint32_t len = host32(in, 0);
            if (len > kPtmHashDataSize) return make_error(rc::kFail, "CMD_HASH_DATA: more than 4096 bytes");
            put_be32(m, len);
            m.insert(m.end(), in.begin() + 4, in.begin() + 4 + len);
            break;
        }
        case Cmd::SetBufferSize: put_be32(m, host32(in, 0)); break;
        case Cmd::GetInfo: {
            uint64_t flags = 0;
            std::memcpy(&flags, in.data(), 8);
            put_be64(m, flags);
            put_be32(m, host32(in, 8));
            put_be32(m, 0);
            break;
        }
        case Cmd::GetStateBlob:
        case Cmd::SetStateBlob:
        case Cmd::SetDataFd: return make_error(rc::kFail, "not translated here");
        default: break;  // no body
    }
    return m;
}

Bytes ptm_from_reply(const PtmIoctl& io, ByteView reply) {
    const uint32_t result = reply.size() >= 4 ? load_be32(reply.data()) : rc::kFail;
    if (io.cmd == Cmd::GetCapability) {
        Bytes out(8);
        const uint64_t caps = kPtmCuseCapabilities;
        std::memcpy(out.data(), &caps, 8);
        return out;
    }
    if (result != rc::kSuccess) return ptm_result(result);
    auto be = [&](size_t off) { return off + 4 <= reply.size() ? load_be32(reply.data() + off) : 0u; };
    switch (io.cmd) {
        case Cmd::GetTpmEstablished: {
            Bytes out(8, 0);
            put_host32(out, 0, result);
            out[4] = reply.size() > 4 ? reply[4] : 0;
            return out;
        }
        case Cmd::GetConfig: {
            Bytes out(8);
            put_host32(out, 0, result);
            put_host32(out, 4, be(4));
            return out;
        }
        case Cmd::SetBufferSize: {
            Bytes out(16);
            for (size_t off = 0; off < 16; off += 4) put_host32(out, off, be(off));
            return out;
        }
        case Cmd::HashData: {
            Bytes out(io.size, 0);  // swtpm replies the whole struct
            put_host32(out, 0, result);
            return out;
        }
        case Cmd::GetInfo: {
            Bytes out(io.size, 0);
            put_host32(out, 0, result);
            put_host32(out, 4, be(4));
            const uint32_t len = std::min<uint32_t>(be(8), kPtmGetInfoSize);
            put_host32(out, 8, len);
            if (reply.size() >= 12 + size_t{len}) std::memcpy(out.data() + 12, reply.data() + 12, len);
            return out;
        }
        default: return ptm_result(result);
    }
}

}  // namespace vtpm::ctrl
