#include "ctrl_cmds.hpp"

#include <cstdio>
#include <string>

#include "net.hpp"

namespace bench {
namespace {

void put_be32(Bytes& b, uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<uint8_t>(v >> shift));
}

uint32_t be32_at(const Bytes& b, size_t off) {
    return (uint32_t{b[off]} << 24) | (uint32_t{b[off + 1]} << 16) | (uint32_t{b[off + 2]} << 8) | b[off + 3];
}

const char* ctrl_name(uint32_t code) {
    switch (code) {
        case ctrl::kInit: return "CMD_INIT";
        case ctrl::kGetTpmEstablished: return "CMD_GET_TPMESTABLISHED";
        case ctrl::kGetStateBlob: return "CMD_GET_STATEBLOB";
        case ctrl::kSetStateBlob: return "CMD_SET_STATEBLOB";
        case ctrl::kStop: return "CMD_STOP";
        case ctrl::kGetConfig: return "CMD_GET_CONFIG";
        default: return "control command";
    }
}

vtpm::Error result_error(const Bytes& req, uint32_t result) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "%s returned result 0x%x", ctrl_name(be32_at(req, 0)), result);
    return vtpm::make_error(result, buf);
}

}  // namespace

Bytes ctrl_request(uint32_t code, std::initializer_list<uint32_t> fields) {
    Bytes b;
    b.reserve(4 + 4 * fields.size());
    put_be32(b, code);
    for (uint32_t f : fields) put_be32(b, f);
    return b;
}

Bytes ctrl_set_stateblob_request(uint32_t type, const Bytes& blob) {
    Bytes b = ctrl_request(ctrl::kSetStateBlob, {0, type, static_cast<uint32_t>(blob.size())});
    b.insert(b.end(), blob.begin(), blob.end());
    return b;
}

vtpm::Result<void> ctrl_call(int fd, const Bytes& req, size_t ok_size, Bytes& rsp) {
    rsp.clear();
    if (auto r = send_all(fd, req.data(), req.size()); !r) return r;
    if (auto r = recv_at_least(fd, rsp, 4); !r) return r;
    if (uint32_t result = be32_at(rsp, 0); result != 0) return result_error(req, result);
    if (auto r = recv_at_least(fd, rsp, ok_size); !r) return r;
    if (rsp.size() != ok_size)
        return vtpm::make_error(vtpm::rc::kFail, std::string(ctrl_name(be32_at(req, 0))) + ": " +
                                                     std::to_string(rsp.size()) + "-byte response, expected " +
                                                     std::to_string(ok_size));
    return {};
}

vtpm::Result<void> ctrl_get_stateblob(int fd, const Bytes& req, Bytes& rsp, Bytes& blob) {
    constexpr size_t kHeader = 16;  // result, state_flags, totlength, length
    rsp.clear();
    if (auto r = send_all(fd, req.data(), req.size()); !r) return r;
    if (auto r = recv_at_least(fd, rsp, kHeader); !r) return r;
    if (uint32_t result = be32_at(rsp, 0); result != 0) return result_error(req, result);
    uint32_t total = be32_at(rsp, 8), length = be32_at(rsp, 12);
    if (total != length || length == 0)
        return vtpm::make_error(vtpm::rc::kFail, "CMD_GET_STATEBLOB: totlength " + std::to_string(total) +
                                                     ", length " + std::to_string(length));
    if (auto r = recv_at_least(fd, rsp, kHeader + length); !r) return r;
    if (rsp.size() != kHeader + length)
        return vtpm::make_error(vtpm::rc::kFail, "CMD_GET_STATEBLOB: more bytes than announced");
    blob.assign(rsp.begin() + kHeader, rsp.end());
    return {};
}

}  // namespace bench
