// swtpm's control commands, one table entry each: capability bit and
// handler. The rules of swtpm 0.7/0.8 live here: which commands need a
// running TPM (CMD_GET_TPMESTABLISHED, hashing, ...) and which a stopped
// one (SET_STATEBLOB).
#include <utility>

#include "core/dispatcher.hpp"
#include "util/log.hpp"

namespace vtpm::core {
namespace {

using ctrl::Cmd;
namespace cap = ctrl::cap;

Reply status(const Result<void>& r, const char* what) { return r ? result_reply(rc::kSuccess) : error_reply(r.error(), what); }

const Reply& not_running() {
    static const Reply r = result_reply(rc::kBadOrdinal);
    return r;
}

// A command that needs a running TPM and answers a bare status.
template <class Req, class Fn>
Command when_running(uint64_t capability, const char* what, Fn fn) {
    return Command{capability, [what, fn](Dispatcher& d, const ctrl::Request& req, const TransportState&) {
                       if (!d.engine().running()) return not_running();
                       return status(fn(d.engine(), std::get<Req>(req)), what);
                   }};
}

// A handler that only needs the decoded request of type Req.
template <class Req, class Fn>
Command simple(uint64_t capability, Fn fn) {
    return Command{capability, [fn](Dispatcher& d, const ctrl::Request& req, const TransportState&) {
                       return fn(d, std::get<Req>(req));
                   }};
}

Reply set_state_blob(Dispatcher& d, const ctrl::SetStateBlobReq& req) {
    if (d.engine().running()) return not_running();
    if (req.type < ctrl::kBlobTypePermanent || req.type > ctrl::kBlobTypeSavestate) {
        VTPM_LOG_ERROR("CMD_SET_STATEBLOB: unknown blob type %u", req.type);
        return result_reply(rc::kBadParameter);
    }
    auto r = d.import_blob(static_cast<engine::BlobType>(req.type), req.state_flags, req.data);
    if (!r) return error_reply(r.error(), "CMD_SET_STATEBLOB");
    VTPM_LOG_INFO("CMD_SET_STATEBLOB: accepted blob type %u (%zu bytes)", req.type, req.data.size());
    return result_reply(rc::kSuccess);
}

Reply get_info(Dispatcher& d, const ctrl::GetInfoReq& req) {
    auto info = d.engine().info(static_cast<uint32_t>(req.flags));
    if (!info) return error_reply(info.error(), "CMD_GET_INFO");
    if (req.offset >= info->size()) return result_reply(rc::kBadParameter);
    return Reply{ctrl::encode_info(*info, req.offset)};
}

}  // namespace

void add_swtpm_commands(Dispatcher& d) {
    using E = engine::Engine;
    d.add_command(Cmd::GetCapability, simple<ctrl::GetCapabilityReq>(0, [](Dispatcher& self, const auto&) {
                      return Reply{ctrl::encode_capability(self.capabilities())};
                  }));
    d.add_command(Cmd::Init, simple<ctrl::InitReq>(cap::kInit, [](Dispatcher& self, const ctrl::InitReq& r) {
                      auto res = self.init((r.flags & ctrl::kInitFlagDeleteVolatile) != 0);
                      if (!res) return error_reply(res.error(), "CMD_INIT");
                      VTPM_LOG_INFO("TPM initialised");
                      return result_reply(rc::kSuccess);
                  }));
    d.add_command(Cmd::Shutdown, simple<ctrl::ShutdownReq>(cap::kShutdown, [](Dispatcher& self, const auto&) {
                      self.engine().stop();
                      return Reply{ctrl::encode_result(rc::kSuccess), Action::Shutdown};
                  }));
    d.add_command(Cmd::GetTpmEstablished,
                  simple<ctrl::GetTpmEstablishedReq>(cap::kGetTpmEstablished, [](Dispatcher& self, const auto&) {
                      if (!self.engine().running()) return not_running();
                      auto b = self.engine().tpm_established();
                      if (!b) return error_reply(b.error(), "CMD_GET_TPMESTABLISHED");
                      return Reply{ctrl::encode_tpm_established(rc::kSuccess, *b)};
                  }));
    d.add_command(Cmd::SetLocality,
                  simple<ctrl::SetLocalityReq>(cap::kSetLocality, [](Dispatcher& self, const ctrl::SetLocalityReq& r) {
                      return status(self.engine().set_locality(r.locality), "CMD_SET_LOCALITY");
                  }));
    d.add_command(Cmd::HashStart, when_running<ctrl::HashStartReq>(cap::kHashing, "CMD_HASH_START",
                                                                   [](E& e, const auto&) { return e.hash_start(); }));
    d.add_command(Cmd::HashData,
                  when_running<ctrl::HashDataReq>(cap::kHashing, "CMD_HASH_DATA",
                                                  [](E& e, const ctrl::HashDataReq& r) { return e.hash_data(r.data); }));
    d.add_command(Cmd::HashEnd, when_running<ctrl::HashEndReq>(cap::kHashing, "CMD_HASH_END",
                                                               [](E& e, const auto&) { return e.hash_end(); }));
    d.add_command(Cmd::CancelTpmCmd, when_running<ctrl::CancelTpmCmdReq>(cap::kCancelTpmCmd, "CMD_CANCEL_TPM_CMD",
                                                                         [](E& e, const auto&) { return e.cancel(); }));
    d.add_command(Cmd::StoreVolatile,
                  when_running<ctrl::StoreVolatileReq>(cap::kStoreVolatile, "CMD_STORE_VOLATILE",
                                                       [](E& e, const auto&) { return e.store_volatile(); }));
    d.add_command(Cmd::ResetTpmEstablished,
                  when_running<ctrl::ResetTpmEstablishedReq>(
                      cap::kResetTpmEstablished, "CMD_RESET_TPMESTABLISHED",
                      [](E& e, const ctrl::ResetTpmEstablishedReq& r) { return e.reset_tpm_established(r.locality); }));
    d.add_command(Cmd::GetStateBlob,
                  simple<ctrl::GetStateBlobReq>(cap::kGetStateBlob, [](Dispatcher& self, const ctrl::GetStateBlobReq& r) {
                      if (!self.engine().running()) return not_running();
                      return self.get_state_blob(r);
                  }));
    d.add_command(Cmd::SetStateBlob, simple<ctrl::SetStateBlobReq>(cap::kSetStateBlob, set_state_blob));
    d.add_command(Cmd::Stop, simple<ctrl::StopReq>(cap::kStop, [](Dispatcher& self, const auto&) {
                      self.engine().stop();
                      return result_reply(rc::kSuccess);
                  }));
    d.add_command(Cmd::GetConfig, simple<ctrl::GetConfigReq>(cap::kGetConfig, [](Dispatcher& self, const auto&) {
                      uint32_t flags = 0;
                      if (self.engine().store().state_key()) flags |= ctrl::kConfigFlagFileKey;
                      if (self.config().migration_key) flags |= ctrl::kConfigFlagMigrationKey;
                      return Reply{ctrl::encode_config(rc::kSuccess, flags)};
                  }));
    d.add_command(Cmd::SetDataFd, Command{cap::kSetDataFd, [](Dispatcher&, const ctrl::Request&,
                                                              const TransportState& ts) {
                      if (ts.data_channel_busy) return result_reply(rc::kIoError);
                      if (ts.received_fd < 0) return result_reply(rc::kBadParameter);
                      return Reply{ctrl::encode_result(rc::kSuccess), Action::AdoptDataFd};
                  }});
    d.add_command(Cmd::SetBufferSize, simple<ctrl::SetBufferSizeReq>(cap::kSetBufferSize, [](Dispatcher& self,
                                                                                            const ctrl::SetBufferSizeReq& r) {
                      auto b = self.engine().buffer_size(r.buffersize);
                      if (!b) return error_reply(b.error(), "CMD_SET_BUFFERSIZE");
                      return Reply{ctrl::encode_buffersize(rc::kSuccess, b->size, b->min, b->max)};
                  }));
    d.add_command(Cmd::GetInfo, simple<ctrl::GetInfoReq>(cap::kGetInfo, get_info));
    if (d.config().lock_storage)
        d.add_command(Cmd::LockStorage,
                      simple<ctrl::LockStorageReq>(cap::kLockStorage, [](Dispatcher& self, const ctrl::LockStorageReq& r) {
                          auto res = self.relock(r.retries);
                          return res ? result_reply(rc::kSuccess)
                                     : error_reply(Error{rc::kFail, res.error().message}, "CMD_LOCK_STORAGE");
                      }));
    if (d.config().vendor_commands)
        d.add_command(Cmd::VtpmTpmCommand, simple<ctrl::VendorTpmCommandReq>(cap::kVtpmTpmCommand, [](Dispatcher& self,
                                                                                                      const ctrl::VendorTpmCommandReq& r) {
                          E& e = self.engine();
                          if (!e.running() || !e.tpm2()) return not_running();
                          if (self.lock_released()) return result_reply(rc::kFail);  // the state is the target's now
                          // One command between the guest's: logged by code only, never by content.
                          VTPM_LOG_INFO("CMD_VTPM_TPM_COMMAND: TPM command %s from the host",
                                        hex32(load_be32(r.command.data() + 6)).c_str());
                          return Reply{ctrl::encode_vendor_tpm_response(rc::kSuccess, e.host_command(r.command))};
                      }));
}

}  // namespace vtpm::core
