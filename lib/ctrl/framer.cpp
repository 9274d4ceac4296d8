#include "ctrl/framer.hpp"

#include <algorithm>

namespace vtpm::ctrl {

Frame Framer::next(ByteView buf) const {
    Frame f;
    if (buf.empty()) return f;
    f.code = buf.size() >= 4 ? load_be32(buf.data()) : 0;
    const auto need = frame_size(buf, opts_.vendor);
    const auto code = static_cast<Cmd>(f.code);
    if ((code == Cmd::SetLocality || code == Cmd::ResetTpmEstablished) && buf.size() >= 5) {
        // QEMU sends a 4-byte body, tpm2-tss a 1-byte one, each in one write.
        f.size = std::min<size_t>(buf.size(), 8);
    } else if (need && *need > kMaxMessage) {
        f.kind = Frame::Kind::Fatal;
        f.size = buf.size();
        f.fatal_result = code == Cmd::SetStateBlob ? rc::kFail : rc::kBadParameter;
        f.reason =
            "announces " + std::to_string(*need) + " bytes, more than the " + std::to_string(kMaxMessage) + " allowed";
        return f;
    } else if (code == Cmd::SetStateBlob && buf.size() >= 16 && load_be32(buf.data() + 12) > kMaxStateBlob) {
        // The announced payload cannot be skipped safely.
        f.kind = Frame::Kind::Fatal;
        f.size = 16;
        f.fatal_result = rc::kFail;
        f.reason = "announces a " + std::to_string(load_be32(buf.data() + 12)) + "-byte blob, more than the " +
                   std::to_string(kMaxStateBlob) + " allowed";
        return f;
    } else if (need && buf.size() >= *need) {
        f.size = *need;
    } else {
        return f;  // incomplete
    }
    f.kind = Frame::Kind::Message;
    f.request = decode_request(buf.first(f.size), opts_.lock_storage, opts_.vendor);
    return f;
}

}  // namespace vtpm::ctrl
