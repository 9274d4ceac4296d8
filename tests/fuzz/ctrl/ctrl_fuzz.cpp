// Fuzz the control-channel codec: framing and decoding of arbitrary bytes;
// whatever decodes must re-encode to the same bytes (or, for commands that
// ignore trailing bytes, a prefix); the Framer never claims more than it
// has; the
// client's parse of a vendor answer's head.
#include <algorithm>
#include <cstdlib>

#include "ctrl/codec.hpp"
#include "ctrl/framer.hpp"
#include "ctrl/ptm_ioctl.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    vtpm::ByteView in(data, size);
    for (bool vendor : {false, true}) {
        auto f = vtpm::ctrl::frame_size(in, vendor);
        if (f && *f < 4) std::abort();
    }
    for (bool vendor : {false, true}) {
        const vtpm::ctrl::Framer framer({true, vendor});
        vtpm::ByteView rest = in;
        while (!rest.empty()) {
            auto fr = framer.next(rest);
            if (fr.kind == vtpm::ctrl::Frame::Kind::Incomplete) break;
            if (fr.size == 0 || fr.size > rest.size()) std::abort();
            // A front end never reads past swtpm's window for a message it can frame.
            if (rest.size() < vtpm::ctrl::kReadWindow &&
                framer.read_limit(rest) != vtpm::ctrl::kReadWindow - rest.size())
                std::abort();
            if (fr.kind == vtpm::ctrl::Frame::Kind::Fatal) break;
            rest = rest.subspan(fr.size);
        }
    }
    if (auto n = vtpm::ctrl::vendor_response_length(in); n && *n > vtpm::ctrl::kMaxVendorTpmCommand) std::abort();
    // CUSE ioctls: any process that may open the device writes these structs.
    for (auto cmd : {vtpm::ctrl::Cmd::GetCapability, vtpm::ctrl::Cmd::Init, vtpm::ctrl::Cmd::SetLocality,
                     vtpm::ctrl::Cmd::HashData, vtpm::ctrl::Cmd::SetBufferSize, vtpm::ctrl::Cmd::GetInfo,
                     vtpm::ctrl::Cmd::GetTpmEstablished, vtpm::ctrl::Cmd::GetConfig}) {
        auto io = vtpm::ctrl::ptm_ioctl(vtpm::ctrl::ptm_request(cmd));
        if (!io) std::abort();
        if (auto m = vtpm::ctrl::ptm_to_message(*io, in); m && m->size() > 4 + 4 + vtpm::ctrl::kPtmHashDataSize)
            std::abort();
        if (vtpm::ctrl::ptm_from_reply(*io, in).size() > io->size) std::abort();
    }
    for (int mode = 0; mode < 3; ++mode) {
        // lock storage on/off, and with our vendor command enabled
        auto r = vtpm::ctrl::decode_request(in, mode != 1, mode == 2);
        if (!r) continue;
        vtpm::Bytes again = vtpm::ctrl::encode_request(*r);
        // Commands that ignore what follows their body (as swtpm) re-encode
        // to a prefix of the input; SET_LOCALITY/RESET_TPMESTABLISHED in
        // QEMU's 4-byte form.
        const uint32_t code = vtpm::load_be32(data);
        if (code == 5 || code == 11) {
            if (again.size() != 8 || again[4] != data[4]) std::abort();
        } else if (code == 0x12) {  // GET_INFO's pad field is ignored and re-encoded as 0
            if (again.size() != 20 || !std::equal(again.begin(), again.begin() + 16, data)) std::abort();
        } else if (code == 1 || code == 0x0c || code == 0x10 || code == 0x11) {
            if (again.size() > size || !std::equal(again.begin(), again.end(), data)) std::abort();
        } else if (again != vtpm::Bytes(data, data + size)) {
            std::abort();
        }
    }
    return 0;
}
