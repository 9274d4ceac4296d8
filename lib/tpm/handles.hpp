// Handles, NV indices, command and response codes the project relies on:
// the TCG EK credential profile's (as swtpm uses them), our vAIK's, and the
// codes the bridge itself looks at. One place, so a handle never differs
// between the code that writes it and the code that reads it.
#pragma once

#include <tss2/tss2_tpm2_types.h>

#include <cstdint>

namespace vtpm::tpm {

/// Standard handles and NV indices (TCG EK Credential Profile 2.0 / swtpm).
inline constexpr uint32_t kEkRsa2048Handle = 0x81010001;
inline constexpr uint32_t kEkEccP256Handle = 0x81010002;
inline constexpr uint32_t kEkRsa3072Handle = 0x8101001c;
inline constexpr uint32_t kSpkHandle = 0x81000001;
inline constexpr uint32_t kNvRsa2048EkCert = 0x01c00002;
inline constexpr uint32_t kNvRsa2048EkTemplate = 0x01c00004;
inline constexpr uint32_t kNvEccP256EkCert = 0x01c0000a;
inline constexpr uint32_t kNvEccP256EkTemplate = 0x01c0000c;
inline constexpr uint32_t kNvRsa3072EkCert = 0x01c0001c;
inline constexpr uint32_t kNvRsa3072EkTemplate = 0x01c0001d;
inline constexpr uint32_t kNvPlatformCert = 0x01c08000;
/// Attributes of the certificate indices: platform-created, readable by
/// owner and with auth, written with platform auth, lockable until the next
/// definition (WRITEDEFINE), no dictionary-attack accounting.
inline constexpr uint32_t kNvCertAttributes = TPMA_NV_PLATFORMCREATE | TPMA_NV_AUTHREAD | TPMA_NV_OWNERREAD |
                                              TPMA_NV_PPREAD | TPMA_NV_PPWRITE | TPMA_NV_NO_DA |
                                              TPMA_NV_WRITEDEFINE;
/// The largest NV_Write/NV_Read chunk libtpms accepts.
inline constexpr uint16_t kNvChunk = 1024;

/// vAIK persistent handle (owner range, next to the EK handles).
inline constexpr uint32_t kVaikHandle = 0x81010020;
/// CertvAIK (DER), the identity bundle, and the 8-byte identity generation.
inline constexpr uint32_t kNvVaikCert = 0x01c10100;
inline constexpr uint32_t kNvIdentityBundle = 0x01c10101;
inline constexpr uint32_t kNvGeneration = 0x01c10102;

/// Codes the engine and the transports use to answer without libtpms.
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


}  // namespace vtpm::tpm
