#include <respite/proxy/backend.hpp>

#include <utility>

namespace respite::proxy {
namespace {

class standalone_backend final : public backend {
  public:
    standalone_backend(std::string name, client::client_config cfg)
        : name_(std::move(name)), client_(std::move(cfg)) {}
    ~standalone_backend() override { client_.close(); }

    void exec(client::request req, replies_callback cb) override {
        client_.async_exec(std::move(req), std::move(cb));
    }
    void transaction(client::request req, replies_callback cb) override {
        client_.async_transaction(std::move(req), std::move(cb));
    }
    [[nodiscard]] const std::string& name() const noexcept override { return name_; }
    [[nodiscard]] bool is_cluster() const noexcept override { return false; }
    void close() override { client_.close(); }

  private:
    std::string name_;
    client::client client_;
};

class cluster_backend final : public backend {
  public:
    cluster_backend(std::string name, cluster::cluster_config cfg)
        : name_(std::move(name)), client_(std::move(cfg)) {}
    ~cluster_backend() override { client_.close(); }

    void exec(client::request req, replies_callback cb) override {
        client_.async_exec(std::move(req), std::move(cb));
    }
    void transaction(client::request req, replies_callback cb) override {
        client_.async_transaction(std::move(req), std::move(cb));
    }
    [[nodiscard]] const std::string& name() const noexcept override { return name_; }
    [[nodiscard]] bool is_cluster() const noexcept override { return true; }
    void close() override { client_.close(); }

  private:
    std::string name_;
    cluster::cluster_client client_;
};

}  // namespace

std::shared_ptr<backend> make_standalone_backend(std::string name, client::client_config cfg) {
    return std::make_shared<standalone_backend>(std::move(name), std::move(cfg));
}

std::shared_ptr<backend> make_cluster_backend(std::string name, cluster::cluster_config cfg) {
    return std::make_shared<cluster_backend>(std::move(name), std::move(cfg));
}

}  // namespace respite::proxy
