// A StateStore in memory: vtpm-setup manufactures into it and replaces the
// real state in one atomic write only when everything succeeded, so a failed
// or interrupted manufacturing never leaves a half-made or missing state.
#include <map>

#include "store/state_store.hpp"

namespace vtpm::store {

namespace {

class MemoryStore final : public StateStore {
public:
    Result<void> lock() override { return {}; }
    void unlock() override {}
    bool locked() const override { return true; }

    Result<SecureBytes> load(std::string_view name) override {
        auto it = blobs_.find(std::string(name));
        if (it == blobs_.end()) return make_error(rc::kRetry, std::string(name) + " does not exist");
        return it->second;
    }
    Result<Bytes> load_raw(std::string_view name) override {
        auto b = load(name);
        if (!b) return b.error();
        return Bytes(b->view().begin(), b->view().end());
    }
    Result<void> store(std::string_view name, ByteView plain) override {
        blobs_[std::string(name)] = SecureBytes(plain);
        return {};
    }
    Result<void> remove(std::string_view name, bool must_exist) override {
        if (blobs_.erase(std::string(name)) == 0 && must_exist)
            return make_error(rc::kRetry, std::string(name) + " does not exist");
        return {};
    }
    Result<std::vector<StateEntry>> list() override {
        std::vector<StateEntry> out;
        for (auto n : {kPermall, kVolatile, kSavestate}) {
            auto it = blobs_.find(std::string(n));
            if (it != blobs_.end()) out.push_back({std::string(n), it->second.size()});
        }
        return out;
    }
    const Key* state_key() const override { return nullptr; }

private:
    std::map<std::string, SecureBytes> blobs_;
};

}  // namespace

std::unique_ptr<StateStore> make_memory_store() { return std::make_unique<MemoryStore>(); }

}  // namespace vtpm::store
