// swtpm control channel (control-channel.md §2-§5), client side: a small
// encoder for the few commands the benchmark sends, and calls that check the
// result code. All integers big-endian; no length prefix.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <vector>

#include "vtpm/result.hpp"

namespace bench {

using Bytes = std::vector<uint8_t>;

namespace ctrl {
inline constexpr uint32_t kInit = 0x02, kGetTpmEstablished = 0x04, kGetStateBlob = 0x0c, kSetStateBlob = 0x0d,
                          kStop = 0x0e, kGetConfig = 0x0f;
inline constexpr uint32_t kBlobPermanent = 1, kBlobVolatile = 2;
inline constexpr uint32_t kStateFlagDecrypted = 1;
inline constexpr uint32_t kInitFlagDeleteVolatile = 1;
}  // namespace ctrl

/// 4-byte command code followed by u32 fields.
Bytes ctrl_request(uint32_t code, std::initializer_list<uint32_t> fields = {});
/// SET_STATEBLOB request: header (flags 0, type, length) and the blob, as one message.
Bytes ctrl_set_stateblob_request(uint32_t type, const Bytes& blob);

/// Send a prepared request and read a fixed-size success response of
/// `ok_size` bytes into `rsp` (reused). A non-zero result (error responses
/// are 4 bytes) is an error naming the command.
vtpm::Result<void> ctrl_call(int fd, const Bytes& req, size_t ok_size, Bytes& rsp);

/// GET_STATEBLOB (offset 0, decrypted) into `blob`; checks result and
/// that the whole blob came in one response (totlength == length).
vtpm::Result<void> ctrl_get_stateblob(int fd, const Bytes& req, Bytes& rsp, Bytes& blob);

}  // namespace bench
