// TPM commands the bridge itself sends into libtpms, marshalled with
// tss2-mu, and the few response fields it reads.
#pragma once

#include <cstdint>

#include "util/bytes.hpp"

namespace vtpm::engine {

inline constexpr uint32_t kTpm2CcShutdown = 0x145;
inline constexpr uint32_t kTpm2CcStartup = 0x144;
inline constexpr uint32_t kTpm2RcInitialize = 0x100;
inline constexpr uint32_t kTpm2RcFailure = 0x101;
inline constexpr uint32_t kTpm2RcLocality = 0x107;
inline constexpr uint32_t kTpm2RcInsufficient = 0x9a;
inline constexpr uint16_t kTpm2StNoSessions = 0x8001;
inline constexpr uint16_t kTpm12TagRspCommand = 0x00c4;
inline constexpr uint32_t kTpm12Fail = 0x09;
inline constexpr uint32_t kTpm12BadLocality = 0x3d;
inline constexpr uint32_t kTpm12BadParamSize = 0x19;
/// In-band locality command of the vTPM proxy (both TPM versions).
inline constexpr uint32_t kCcSetLocality = 0x20001000;

/// TPM2_Shutdown(shutdownType): 0 = SU_CLEAR, 1 = SU_STATE.
Bytes tpm2_shutdown(uint16_t su);
/// TPM2_Startup(startupType).
Bytes tpm2_startup(uint16_t su);
/// TPM 1.2 TPM_Startup(type): 1 clear, 2 state, 3 deactivated.
Bytes tpm12_startup(uint16_t type);
/// A bare 10-byte response header with the given tag and code.
Bytes response_header(uint16_t tag, uint32_t rc);

/// Response code of a complete response, or 0xffffffff if too short.
uint32_t response_code(ByteView rsp);
/// Command code of a command, or 0 if too short.
uint32_t command_code(ByteView cmd);

}  // namespace vtpm::engine
