// swtpm's CUSE ioctls (tpm_ioctl.h, swtpm 0.7.1): the request numbers, the
// sizes of their host-endian structs, and the translation of each to and
// from the control channel's big-endian messages, so a CUSE front end runs
// every command through the same dispatcher as the socket. Pure.
// GET_STATEBLOB and SET_STATEBLOB carry at most kPtmStateBlobSize bytes per
// ioctl; the front end chunks them (the rest through read()/write()).
#pragma once

#include <cstdint>
#include <optional>

#include "ctrl/codec.hpp"
#include "util/bytes.hpp"
#include "vtpm/result.hpp"

namespace vtpm::ctrl {

/// Blob bytes one GET/SET_STATEBLOB ioctl carries (PTM_STATE_BLOB_SIZE).
inline constexpr size_t kPtmStateBlobSize = 3072;
/// Text bytes one GET_INFO ioctl carries (PTM_GETINFO_SIZE).
inline constexpr size_t kPtmGetInfoSize = 3072;
/// Hash bytes one HASH_DATA ioctl carries.
inline constexpr size_t kPtmHashDataSize = 4096;
/// What swtpm's CUSE front end advertises: every control command but
/// SET_DATAFD and the TPM 2 command header (0x6fff).
inline constexpr uint64_t kPtmCuseCapabilities = 0x6fff;

/// One ioctl: its number, the control command it stands for, and the size
/// of its struct (what the kernel copies in and at most out).
struct PtmIoctl {
    uint32_t request;
    Cmd cmd;
    uint32_t size;
};

/// The ioctl with this request number (nullopt: not one of swtpm's).
std::optional<PtmIoctl> ptm_ioctl(uint32_t request);
/// The request number of a command's ioctl.
uint32_t ptm_request(Cmd cmd);

/// The control message an ioctl's input struct makes (not for the
/// state-blob ioctls, which the front end assembles). A bad struct (short,
/// a hash longer than 4096 bytes) is an error with swtpm's result code.
Result<Bytes> ptm_to_message(const PtmIoctl& io, ByteView in);

/// The ioctl's output from the control channel's reply to that message:
/// the host-endian struct, as long as swtpm's CUSE front end replies (an
/// error is only its 4-byte result).
Bytes ptm_from_reply(const PtmIoctl& io, ByteView reply);

/// A ptm_res (or any error) reply: the result in host order.
Bytes ptm_result(uint32_t result);

}  // namespace vtpm::ctrl
