#include "ctrl/framer.hpp"

#include <algorithm>

namespace vtpm::ctrl {

Frame Framer::next(ByteView buf) const {
    Frame f;
    if (buf.empty()) return f;
    f.code = buf.size() >= 4 ? load_be32(buf.data()) : 0;
    const auto need = frame_size(buf, opts_.vendor);
    const auto code = static_cast<Cmd>(f.code);
    if (need && *need > kMaxMessage) {
        f.kind = Frame::Kind::Fatal;
        f.size = buf.size();
        f.fatal_result = code == Cmd::SetStateBlob ? rc::kFail : rc::kBadParameter;
        f.reason =
            "announces " + std::to_string(*need) + " bytes, more than the " + std::to_string(kMaxMessage) + " allowed";
        return f;
    } else if (code == Cmd::SetStateBlob && buf.size() >= 16 && load_be32(buf.data() + 12) > kMaxStateBlob) {
        // The announced payload cannot be skipped safely.
        f.kind = Frame::Kind::Fatal;
        f.size = buf.size();
        f.fatal_result = rc::kFail;
        f.reason = "announces a " + std::to_string(load_be32(buf.data() + 12)) + "-byte blob, more than the " +
                   std::to_string(kMaxStateBlob) + " allowed";
        return f;
    } else if (need && buf.size() >= *need) {
        // One message per read: what else the read brought belongs to it.
        f.size = buf.size();
    } else {
        return f;  // incomplete
    }
    f.kind = Frame::Kind::Message;
    f.request = decode_request(buf.first(f.size), opts_.lock_storage, opts_.vendor);
    return f;
}

size_t Framer::read_limit(ByteView buf) const {
    if (buf.size() < kReadWindow) return kReadWindow - buf.size();
    const auto need = frame_size(buf, opts_.vendor);
    if (need && *need > buf.size()) return std::min<size_t>(*need - buf.size(), 64 * 1024);
    return 0;
}

}  // namespace vtpm::ctrl
