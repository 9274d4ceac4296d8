#include "bridge/cuse/device.hpp"

#include <cerrno>
#include <cstring>

#include "ctrl/ptm_ioctl.hpp"

namespace vtpm::bridge {

namespace {

constexpr size_t kTpmReqMax = 4096;  // one write() is at most one command of this size

uint32_t host32(ByteView b, size_t off) {
    uint32_t v = 0;
    std::memcpy(&v, b.data() + off, 4);
    return v;
}

Bytes message(ctrl::Cmd cmd, std::initializer_list<uint32_t> words, ByteView tail = {}) {
    Bytes m;
    put_be32(m, static_cast<uint32_t>(cmd));
    for (uint32_t w : words) put_be32(m, w);
    m.insert(m.end(), tail.begin(), tail.end());
    return m;
}

uint32_t result_of(const core::Reply& r) { return r.bytes.size() >= 4 ? load_be32(r.bytes.data()) : rc::kFail; }

}  // namespace

void CuseDevice::open() {
    get_mode_ = false;
    set_.reset();
    set_by_write_ = false;
}

CuseDevice::IoctlReply CuseDevice::ioctl(uint32_t request, ByteView in) {
    const auto io = ctrl::ptm_ioctl(request);
    if (!io || io->cmd == ctrl::Cmd::SetDataFd) return IoctlReply{EINVAL, {}, false};
    if (io->cmd == ctrl::Cmd::GetStateBlob) return get_state_blob(in);
    if (io->cmd == ctrl::Cmd::SetStateBlob) return set_state_blob(in);
    auto msg = ctrl::ptm_to_message(*io, in);
    if (!msg) return IoctlReply{0, ctrl::ptm_result(msg.code()), false};
    const core::Reply r = d_.handle_message(*msg, core::TransportState{});
    if (io->cmd == ctrl::Cmd::Stop || io->cmd == ctrl::Cmd::Init || io->cmd == ctrl::Cmd::Shutdown) {
        response_.clear();
        response_pos_ = 0;
    }
    if (io->cmd == ctrl::Cmd::StoreVolatile) cache_.reset();
    return IoctlReply{0, ctrl::ptm_from_reply(*io, r.bytes), r.action == core::Action::Shutdown};
}

CuseDevice::IoctlReply CuseDevice::get_state_blob(ByteView in) {
    if (in.size() < 12) return IoctlReply{0, ctrl::ptm_result(rc::kBadParameter), false};
    const uint32_t flags = host32(in, 0), type = host32(in, 4), offset = host32(in, 8);
    // The whole blob is fetched once (at offset 0, or for another type or
    // decrypt flag) and the later offsets read from it: one consistent blob
    // across the ioctls, as swtpm's cache gives.
    if (offset == 0 || !cache_ || cache_->type != type || cache_->flags != flags) {
        cache_.reset();
        const core::Reply r = d_.handle_message(message(ctrl::Cmd::GetStateBlob, {flags, type, 0}),
                                                core::TransportState{});
        const uint32_t result = result_of(r);
        if (result != rc::kSuccess || r.bytes.size() < 16) return IoctlReply{0, ctrl::ptm_result(result), false};
        cache_ = CachedBlob{type, flags, load_be32(r.bytes.data() + 4), SecureBytes(ByteView(r.bytes).subspan(16))};
    }
    const SecureBytes& blob = cache_->blob;
    if (offset > blob.size()) return IoctlReply{0, ctrl::ptm_result(rc::kBadParameter), false};
    const size_t n = std::min(blob.size() - offset, ctrl::kPtmStateBlobSize);
    Bytes out(3088, 0);
    const uint32_t total = static_cast<uint32_t>(blob.size()), len = static_cast<uint32_t>(n);
    std::memcpy(out.data() + 4, &cache_->out_flags, 4);
    std::memcpy(out.data() + 8, &total, 4);
    std::memcpy(out.data() + 12, &len, 4);
    std::memcpy(out.data() + 16, blob.data() + offset, n);
    // What did not fit is read() next.
    get_mode_ = offset + n < blob.size();
    get_pos_ = offset + n;
    return IoctlReply{0, std::move(out), false};
}

uint32_t CuseDevice::commit_blob() {
    const PendingSet p = std::move(*set_);
    set_.reset();
    set_by_write_ = false;
    const core::Reply r = d_.handle_message(
        message(ctrl::Cmd::SetStateBlob, {p.flags, p.type, static_cast<uint32_t>(p.blob.size())}, p.blob.view()),
        core::TransportState{});
    return result_of(r);
}

CuseDevice::IoctlReply CuseDevice::set_state_blob(ByteView in) {
    auto reply = [](uint32_t result) {
        Bytes out(3084, 0);
        std::memcpy(out.data(), &result, 4);
        return IoctlReply{0, std::move(out), false};
    };
    if (in.size() < 12) return reply(rc::kBadParameter);
    const uint32_t flags = host32(in, 0), type = host32(in, 4), length = host32(in, 8);
    if (length > ctrl::kPtmStateBlobSize || in.size() < 12 + size_t{length}) return reply(rc::kBadParameter);
    if (!set_ || set_->type != type) {
        set_ = PendingSet{type, flags, {}};
        if (length == 0) {
            // The blob follows by write(); an ioctl of length 0 ends it.
            set_by_write_ = true;
            return reply(rc::kSuccess);
        }
    }
    set_->blob.append(in.subspan(12, length));
    if (length == ctrl::kPtmStateBlobSize) return reply(rc::kSuccess);  // more chunks follow
    return reply(commit_blob());
}

long CuseDevice::write(ByteView data) {
    if (get_mode_) return -EIO;
    if (set_ && set_by_write_) {
        set_->blob.append(data);
        return static_cast<long>(data.size());
    }
    const ByteView cmd = data.first(std::min(data.size(), kTpmReqMax));
    response_ = d_.tpm_command(cmd);
    response_pos_ = 0;
    return static_cast<long>(cmd.size());
}

Bytes CuseDevice::read(size_t size) {
    if (get_mode_ && cache_) {
        const SecureBytes& blob = cache_->blob;
        const size_t n = std::min(size, blob.size() - get_pos_);
        Bytes out(blob.data() + get_pos_, blob.data() + get_pos_ + n);
        get_pos_ += n;
        if (n < size || get_pos_ == blob.size()) get_mode_ = false;
        return out;
    }
    const size_t n = std::min(size, response_.size() - response_pos_);
    Bytes out(response_.begin() + static_cast<long>(response_pos_),
              response_.begin() + static_cast<long>(response_pos_ + n));
    response_pos_ += n;
    return out;
}

}  // namespace vtpm::bridge
