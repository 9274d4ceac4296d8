// The CUSE front end's device, apart from libfuse: swtpm 0.7.1's ioctls
// (ctrl/ptm_ioctl.hpp) and the read()/write() data channel, run through the
// same dispatcher as the socket front end. State blobs larger than one
// ioctl's 3072 bytes move in chunks: GET_STATEBLOB at increasing offsets or
// the rest by read(); SET_STATEBLOB in 3072-byte ioctls (a shorter one
// commits) or, after an ioctl of length 0, by write() and a final ioctl.
#pragma once

#include <cstdint>
#include <optional>

#include "core/dispatcher.hpp"
#include "util/bytes.hpp"

namespace vtpm::bridge {

class CuseDevice {
public:
    explicit CuseDevice(core::Dispatcher& d) : d_(d) {}

    struct IoctlReply {
        int err = 0;    // an errno for the kernel (EINVAL: not one of swtpm's ioctls)
        Bytes out;      // what the kernel copies back
        bool shutdown = false;  // CMD_SHUTDOWN: end after replying
    };
    /// One ioctl with the struct the kernel copied in.
    IoctlReply ioctl(uint32_t request, ByteView in);
    /// write(): a TPM command (at most 4096 bytes taken), or more of a state
    /// blob in transfer. Returns the bytes taken, or -errno.
    long write(ByteView data);
    /// read(): the next bytes of the last response, or of a state blob.
    Bytes read(size_t size);
    /// open(): back to command mode.
    void open();

private:
    IoctlReply get_state_blob(ByteView in);
    IoctlReply set_state_blob(ByteView in);
    uint32_t commit_blob();

    core::Dispatcher& d_;
    Bytes response_;      // the last TPM response, read() consumes it
    size_t response_pos_ = 0;
    struct CachedBlob {
        uint32_t type = 0, flags = 0, out_flags = 0;
        SecureBytes blob;  // may be plain state: wiped when dropped
    };
    std::optional<CachedBlob> cache_;  // the blob GET_STATEBLOB hands out in chunks
    size_t get_pos_ = 0;               // where read() continues in it
    bool get_mode_ = false;
    struct PendingSet {
        uint32_t type = 0, flags = 0;
        SecureBytes blob;
    };
    std::optional<PendingSet> set_;  // SET_STATEBLOB in transfer
    bool set_by_write_ = false;      // its bytes come by write()
};

}  // namespace vtpm::bridge
