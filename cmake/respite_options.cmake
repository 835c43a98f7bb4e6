# Language level, warnings and sanitizers shared by every respite target.
set(CMAKE_CXX_STANDARD_REQUIRED ON)
set(CMAKE_CXX_EXTENSIONS OFF)
if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  # clang 14 (fuzz build) has no <expected> with libstdc++ 12; only resp is built there.
  set(CMAKE_CXX_STANDARD 20)
else()
  set(CMAKE_CXX_STANDARD 23)
endif()

add_compile_options(-Wall -Wextra)

if(RESPITE_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()
if(RESPITE_TSAN)
  # -Wno-tsan: GCC warns that asio's atomic_thread_fence is invisible to TSan (system header).
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer -Wno-tsan)
  add_link_options(-fsanitize=thread)
endif()

# Asio standalone, without Boost, with coroutines.
add_compile_definitions(ASIO_STANDALONE ASIO_NO_DEPRECATED)
