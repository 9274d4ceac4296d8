// Response encoders (server side) and request encoders (client side).
#include <algorithm>
#include <type_traits>

#include "ctrl/codec.hpp"

namespace vtpm::ctrl {

Bytes encode_result(uint32_t result) {
    Bytes b;
    put_be32(b, result);
    return b;
}

Bytes encode_capability(uint64_t caps) {
    // swtpm 0.7.1 sends a bare u64; newer ones a result and a u32 mask. For
    // masks below 2^32 both are the same 8 bytes.
    Bytes b;
    put_be32(b, 0);
    put_be32(b, static_cast<uint32_t>(caps));
    return b;
}

Bytes encode_tpm_established(uint32_t result, bool established) {
    Bytes b;
    put_be32(b, result);
    b.push_back(established ? 1 : 0);
    b.insert(b.end(), 3, 0);
    return b;
}

Bytes encode_config(uint32_t result, uint32_t flags) {
    Bytes b;
    put_be32(b, result);
    put_be32(b, flags);
    return b;
}

Bytes encode_buffersize(uint32_t result, uint32_t size, uint32_t min, uint32_t max) {
    Bytes b;
    for (uint32_t v : {result, size, min, max}) put_be32(b, v);
    return b;
}

Bytes encode_stateblob(uint32_t result, uint32_t state_flags, ByteView blob, uint32_t offset) {
    ByteView rest = offset < blob.size() ? blob.subspan(offset) : ByteView{};
    Bytes b;
    b.reserve(16 + rest.size());
    put_be32(b, result);
    put_be32(b, state_flags);
    put_be32(b, static_cast<uint32_t>(rest.size()));  // totlength: the socket form sends it all at once
    put_be32(b, static_cast<uint32_t>(rest.size()));
    b.insert(b.end(), rest.begin(), rest.end());
    return b;
}

Bytes encode_info(std::string_view info, uint32_t offset) {
    // The string is sent with its terminating NUL; chunks are at most 3072 bytes.
    constexpr size_t kChunk = 3072;
    const size_t total = info.size() + 1;
    const size_t start = std::min<size_t>(offset, total);
    const size_t len = std::min(total - start, kChunk);
    Bytes b;
    put_be32(b, 0);
    put_be32(b, static_cast<uint32_t>(total));
    put_be32(b, static_cast<uint32_t>(len));
    for (size_t i = start; i < start + len; ++i) b.push_back(i < info.size() ? static_cast<uint8_t>(info[i]) : 0);
    return b;
}

Bytes encode_request(const Request& req) {
    Bytes b;
    std::visit(
        [&](const auto& r) {
            using T = std::decay_t<decltype(r)>;
            auto code = [&](Cmd c) { put_be32(b, static_cast<uint32_t>(c)); };
            if constexpr (std::is_same_v<T, GetCapabilityReq>) code(Cmd::GetCapability);
            else if constexpr (std::is_same_v<T, InitReq>) { code(Cmd::Init); put_be32(b, r.flags); }
            else if constexpr (std::is_same_v<T, ShutdownReq>) code(Cmd::Shutdown);
            else if constexpr (std::is_same_v<T, GetTpmEstablishedReq>) code(Cmd::GetTpmEstablished);
            else if constexpr (std::is_same_v<T, SetLocalityReq>) {
                code(Cmd::SetLocality);  // QEMU's 4-byte form
                b.push_back(r.locality);
                b.insert(b.end(), 3, 0);
            } else if constexpr (std::is_same_v<T, HashStartReq>) code(Cmd::HashStart);
            else if constexpr (std::is_same_v<T, HashDataReq>) {
                code(Cmd::HashData);
                put_be32(b, static_cast<uint32_t>(r.data.size()));
                b.insert(b.end(), r.data.begin(), r.data.end());
            } else if constexpr (std::is_same_v<T, HashEndReq>) code(Cmd::HashEnd);
            else if constexpr (std::is_same_v<T, CancelTpmCmdReq>) code(Cmd::CancelTpmCmd);
            else if constexpr (std::is_same_v<T, StoreVolatileReq>) code(Cmd::StoreVolatile);
            else if constexpr (std::is_same_v<T, ResetTpmEstablishedReq>) {
                code(Cmd::ResetTpmEstablished);
                b.push_back(r.locality);
                b.insert(b.end(), 3, 0);
            } else if constexpr (std::is_same_v<T, GetStateBlobReq>) {
                code(Cmd::GetStateBlob);
                put_be32(b, r.state_flags);
                put_be32(b, r.type);
                put_be32(b, r.offset);
            } else if constexpr (std::is_same_v<T, SetStateBlobReq>) {
                code(Cmd::SetStateBlob);
                put_be32(b, r.state_flags);
                put_be32(b, r.type);
                put_be32(b, static_cast<uint32_t>(r.data.size()));
                b.insert(b.end(), r.data.begin(), r.data.end());
            } else if constexpr (std::is_same_v<T, StopReq>) code(Cmd::Stop);
            else if constexpr (std::is_same_v<T, GetConfigReq>) code(Cmd::GetConfig);
            else if constexpr (std::is_same_v<T, SetDataFdReq>) code(Cmd::SetDataFd);
            else if constexpr (std::is_same_v<T, SetBufferSizeReq>) {
                code(Cmd::SetBufferSize);
                put_be32(b, r.buffersize);
            } else if constexpr (std::is_same_v<T, GetInfoReq>) {
                code(Cmd::GetInfo);
                put_be64(b, r.flags);
                put_be32(b, r.offset);
                put_be32(b, 0);
            } else if constexpr (std::is_same_v<T, LockStorageReq>) {
                code(Cmd::LockStorage);
                put_be32(b, r.retries);
            } else if constexpr (std::is_same_v<T, VendorTpmCommandReq>) {
                code(Cmd::VtpmTpmCommand);
                put_be32(b, static_cast<uint32_t>(r.command.size()));
                b.insert(b.end(), r.command.begin(), r.command.end());
            } else if constexpr (std::is_same_v<T, VendorRamDigestReq>) {
                code(Cmd::VtpmRamDigest);
                put_be32(b, r.phase);
                put_be32(b, r.hash_alg);
                put_be32(b, r.page_size);
                put_be64(b, r.page_count);
                b.insert(b.end(), r.root.begin(), r.root.end());
            } else if constexpr (std::is_same_v<T, VendorSnapshotReq>) {
                code(Cmd::VtpmSnapshot);
            } else if constexpr (std::is_same_v<T, VendorVerifyRamReq>) {
                code(Cmd::VtpmVerifyRam);
            }
        },
        req);
    return b;
}

Result<uint32_t> vendor_response_length(ByteView head) {
    if (head.size() < 8) return make_error(rc::kBadParameter, "vendor response shorter than its 8-byte head");
    const uint32_t result = load_be32(head.data());
    if (result != rc::kSuccess) return make_error(result, "the bridge answered result " + hex32(result));
    const uint32_t len = load_be32(head.data() + 4);
    if (len > kMaxVendorTpmCommand)
        return make_error(rc::kFail, "vendor response announces " + std::to_string(len) + " bytes, more than " +
                                         std::to_string(kMaxVendorTpmCommand));
    return len;
}

Bytes encode_vendor_text_response(uint32_t result, std::string_view text) {
    const size_t n = std::min<size_t>(text.size(), kMaxVendorText);
    Bytes b;
    put_be32(b, result);
    put_be32(b, static_cast<uint32_t>(n));
    b.insert(b.end(), text.begin(), text.begin() + static_cast<long>(n));
    return b;
}

Result<VendorTextHead> vendor_text_head(ByteView head) {
    if (head.size() < 8) return make_error(rc::kBadParameter, "vendor response shorter than its 8-byte head");
    VendorTextHead h{load_be32(head.data()), load_be32(head.data() + 4)};
    if (h.length > kMaxVendorText)
        return make_error(rc::kFail, "vendor response announces " + std::to_string(h.length) +
                                         " bytes of text, more than " + std::to_string(kMaxVendorText));
    return h;
}

Bytes encode_vendor_tpm_response(uint32_t result, ByteView response) {
    Bytes b;
    put_be32(b, result);
    if (result != 0) return b;
    put_be32(b, static_cast<uint32_t>(response.size()));
    b.insert(b.end(), response.begin(), response.end());
    return b;
}

}  // namespace vtpm::ctrl
