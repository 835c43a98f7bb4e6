#include <utility>

#include <respite/proxy/backend.hpp>

namespace respite::proxy {
namespace {

class standalone_backend final : public backend {
  public:
    standalone_backend(std::string name, client::client_config cfg)
        : name_(std::move(name)), client_(std::move(cfg)) {}
    standalone_backend(asio::io_context& ioc, std::string name, client::client_config cfg)
        : name_(std::move(name)), client_(ioc, std::move(cfg)) {}
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
    cluster_backend(asio::io_context& ioc, std::string name, cluster::cluster_config cfg)
        : name_(std::move(name)), client_(ioc, std::move(cfg)) {}
    ~cluster_backend() override { client_.close(); }

    void exec(client::request req, replies_callback cb) override {
        client_.async_exec(std::move(req), std::move(cb));
    }
    void exec_on(const cluster::node_address& node, client::request req,
                 replies_callback cb) override {
        client_.async_exec_on(node, std::move(req), std::move(cb));
    }
    void transaction(client::request req, replies_callback cb) override {
        client_.async_transaction(std::move(req), std::move(cb));
    }
    [[nodiscard]] const std::string& name() const noexcept override { return name_; }
    [[nodiscard]] bool is_cluster() const noexcept override { return true; }
    [[nodiscard]] cluster::slot_map topology() const override { return client_.topology(); }
    void refresh_topology(std::move_only_function<void()> done) override {
        client_.async_refresh([done = std::move(done)](client::result<void>) mutable { done(); });
    }
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

std::shared_ptr<backend> make_standalone_backend(asio::io_context& ioc, std::string name,
                                                 client::client_config cfg) {
    return std::make_shared<standalone_backend>(ioc, std::move(name), std::move(cfg));
}

std::shared_ptr<backend> make_cluster_backend(asio::io_context& ioc, std::string name,
                                              cluster::cluster_config cfg) {
    return std::make_shared<cluster_backend>(ioc, std::move(name), std::move(cfg));
}

namespace {
cluster::cluster_config cluster_config_of(const backend_config& cfg) {
    cluster::cluster_config c;
    c.seeds.push_back(cluster::node_address{cfg.connection.host, cfg.connection.port});
    c.connection = cfg.connection;
    return c;
}
client::client_config client_config_of(const backend_config& cfg) {
    client::client_config c;
    c.connection = cfg.connection;
    return c;
}
}  // namespace

std::shared_ptr<backend> make_backend(std::string name, const backend_config& cfg) {
    if (cfg.cluster)
        return make_cluster_backend(std::move(name), cluster_config_of(cfg));
    return make_standalone_backend(std::move(name), client_config_of(cfg));
}

std::shared_ptr<backend> make_backend(asio::io_context& ioc, std::string name,
                                      const backend_config& cfg) {
    if (cfg.cluster)
        return make_cluster_backend(ioc, std::move(name), cluster_config_of(cfg));
    return make_standalone_backend(ioc, std::move(name), client_config_of(cfg));
}

}  // namespace respite::proxy
