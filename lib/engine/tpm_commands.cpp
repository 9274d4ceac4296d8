#include "engine/tpm_commands.hpp"

#include <tss2/tss2_mu.h>

namespace vtpm::engine {
namespace {

// Header (tag, size, code) followed by one UINT16 parameter: the shape of
// every command here. Marshalled with tss2-mu so sizes and byte order come
// from one audited place.
Bytes command_u16(uint16_t tag, uint32_t code, uint16_t param) {
    Bytes out(12);
    size_t off = 0;
    Tss2_MU_UINT16_Marshal(tag, out.data(), out.size(), &off);
    Tss2_MU_UINT32_Marshal(static_cast<uint32_t>(out.size()), out.data(), out.size(), &off);
    Tss2_MU_UINT32_Marshal(code, out.data(), out.size(), &off);
    Tss2_MU_UINT16_Marshal(param, out.data(), out.size(), &off);
    return out;
}

}  // namespace

Bytes tpm2_shutdown(uint16_t su) { return command_u16(TPM2_ST_NO_SESSIONS, TPM2_CC_Shutdown, su); }
Bytes tpm2_startup(uint16_t su) { return command_u16(TPM2_ST_NO_SESSIONS, TPM2_CC_Startup, su); }
Bytes tpm12_startup(uint16_t type) { return command_u16(0x00c1, 0x99, type); }

Bytes response_header(uint16_t tag, uint32_t rc) {
    Bytes out(10);
    size_t off = 0;
    Tss2_MU_UINT16_Marshal(tag, out.data(), out.size(), &off);
    Tss2_MU_UINT32_Marshal(10, out.data(), out.size(), &off);
    Tss2_MU_UINT32_Marshal(rc, out.data(), out.size(), &off);
    return out;
}

uint32_t response_code(ByteView rsp) {
    uint32_t rc = 0;
    size_t off = 6;
    if (Tss2_MU_UINT32_Unmarshal(rsp.data(), rsp.size(), &off, &rc) != TSS2_RC_SUCCESS) return 0xffffffff;
    return rc;
}

uint32_t command_code(ByteView cmd) {
    uint32_t cc = 0;
    size_t off = 6;
    if (Tss2_MU_UINT32_Unmarshal(cmd.data(), cmd.size(), &off, &cc) != TSS2_RC_SUCCESS) return 0;
    return cc;
}

}  // namespace vtpm::engine
