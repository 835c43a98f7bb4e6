# Pub/Sub, bad-input, TLS and PROXY SYNC cases of respite-proxy (included by this directory's CMakeLists.txt).
add_executable(integration_proxy_edges proxy_pubsub_test.cpp proxy_bad_input_test.cpp
                                      proxy_tls_test.cpp proxy_sync_test.cpp)
target_link_libraries(integration_proxy_edges PRIVATE respite_proxy respite_test_support
                                                      GTest::gtest_main)
gtest_discover_tests(integration_proxy_edges PROPERTIES LABELS integration DISCOVERY_TIMEOUT 30)

# The respite-proxy binary (signals), started as a process of its own.
add_executable(integration_proxy_binary proxy_binary_test.cpp)
target_link_libraries(integration_proxy_binary PRIVATE respite_proxy respite_test_support
                                                       GTest::gtest_main)
target_compile_definitions(integration_proxy_binary
                           PRIVATE RESPITE_PROXY_BINARY="$<TARGET_FILE:respite-proxy>")
add_dependencies(integration_proxy_binary respite-proxy)
gtest_discover_tests(integration_proxy_binary PROPERTIES LABELS integration DISCOVERY_TIMEOUT 30)
