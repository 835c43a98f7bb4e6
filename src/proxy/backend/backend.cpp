// The standalone and Redis Cluster backends (backend.hpp).
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

#include <respite/proxy/backend.hpp>
#include <respite/proxy/every_master.hpp>
#include <respite/resp/request_parser.hpp>

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

class cluster_backend final : public backend, public std::enable_shared_from_this<cluster_backend> {
  public:
    cluster_backend(std::string name, cluster::cluster_config cfg)
        : name_(std::move(name)), client_(std::move(cfg)) {}
    cluster_backend(asio::io_context& ioc, std::string name, cluster::cluster_config cfg)
        : name_(std::move(name)), client_(ioc, std::move(cfg)) {}
    ~cluster_backend() override { client_.close(); }

    void exec(client::request req, replies_callback cb) override {
        // A keyless write that a node applies to its own slots only (FLUSHALL, SCRIPT LOAD,
        // FUNCTION LOAD ...) reaches every master; the commands around it wait for it, so the
        // pipeline keeps its order.
        if (every_master_parts(req.payload()).empty()) {
            client_.async_exec(std::move(req), std::move(cb));
            return;
        }
        auto ch = std::make_shared<chain>();
        ch->req = std::move(req);
        ch->parts = every_master_parts(ch->req.payload());  // views into the moved payload
        ch->cb = std::move(cb);
        step(std::move(ch));
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
    struct part {
        std::string_view bytes;  // into chain::req's payload
        std::size_t commands = 0;
        every_master how = every_master::no;
    };
    struct chain {
        client::request req;
        std::vector<part> parts;
        std::size_t next = 0;
        replies out;
        replies_callback cb;
    };

    // The pipeline cut around its every-master commands; empty when it has none (or does not
    // parse: then it goes as it is).
    static std::vector<part> every_master_parts(std::string_view payload) {
        std::vector<part> parts;
        resp::request_parser parser;
        std::vector<std::string_view> args;
        bool any = false;
        std::string_view rest = payload;
        while (!rest.empty()) {
            parser.reset();
            const auto r = parser.parse(rest, args);
            if (!r.complete || r.error || r.length == 0)
                return {};
            auto how = every_master_of(args);
            if (how == every_master::scan)
                how = every_master::no;  // a node's cursor: only the caller knows which node
            const auto bytes = rest.substr(0, r.length);
            if (how != every_master::no) {
                any = true;
                parts.push_back({bytes, 1, how});
            } else if (!parts.empty() && parts.back().how == every_master::no) {
                parts.back().bytes = std::string_view(parts.back().bytes.data(),
                                                      parts.back().bytes.size() + bytes.size());
                ++parts.back().commands;
            } else {
                parts.push_back({bytes, 1, every_master::no});
            }
            rest.remove_prefix(r.length);
        }
        if (!any)
            parts.clear();
        return parts;
    }

    void step(std::shared_ptr<chain> ch) {
        if (ch->next == ch->parts.size()) {
            ch->cb(std::move(ch->out));
            return;
        }
        const auto p = ch->parts[ch->next++];
        client::request req;
        req.append_encoded(p.bytes, p.commands);
        auto done = [weak = weak_from_this(), ch, how = p.how](client::result<replies> r) mutable {
            auto self = weak.lock();
            if (!self) {
                ch->cb(std::unexpected(client::make_error_code(client::error::closed)));
                return;
            }
            if (!r) {
                ch->cb(std::unexpected(r.error()));
                return;
            }
            if (how == every_master::no) {
                for (auto& v : *r)
                    ch->out.push_back(std::move(v));
            } else {
                ch->out.push_back(combine_replies(how, *r));
            }
            self->step(std::move(ch));
        };
        if (p.how == every_master::no)
            client_.async_exec(std::move(req), std::move(done));
        else
            client_.async_on_all_masters(std::move(req), std::move(done));
    }

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
    c.seeds.insert(c.seeds.end(), cfg.more_seeds.begin(), cfg.more_seeds.end());
    c.connection = cfg.connection;
    // A client's commands must stay in order: a retried TRYAGAIN let later ones run first.
    c.retry_tryagain = false;
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
