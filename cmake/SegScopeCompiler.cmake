# Compiler launcher and warnings shared by every SegScope target.
if(SEGSCOPE_USE_CCACHE)
  find_program(SEGSCOPE_CCACHE ccache)
  if(SEGSCOPE_CCACHE)
    # Precompiled headers need these sloppiness flags for ccache to hit at all.
    set(_launcher ${CMAKE_COMMAND} -E env
        "CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime"
        ${SEGSCOPE_CCACHE})
    set(CMAKE_CXX_COMPILER_LAUNCHER ${_launcher})
    set(CMAKE_C_COMPILER_LAUNCHER ${_launcher})
  endif()
endif()

add_library(segscope_warnings INTERFACE)
add_library(segscope::warnings ALIAS segscope_warnings)
if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  target_compile_options(segscope_warnings INTERFACE -Wall -Wextra -Wno-unused-parameter)
  if(SEGSCOPE_WERROR)
    target_compile_options(segscope_warnings INTERFACE -Werror)
  endif()
endif()

# Sanitizers apply to everything this project compiles (core, CLI, tests); LibTorch, OpenCV and
# Qt are not instrumented. Every UBSan finding aborts, so a test that triggers one fails.
if(SEGSCOPE_SANITIZE)
  add_compile_options(-fsanitize=${SEGSCOPE_SANITIZE} -fno-sanitize-recover=all -fno-omit-frame-pointer)
  add_link_options(-fsanitize=${SEGSCOPE_SANITIZE})
  # GCC's -Wmaybe-uninitialized misfires on LibTorch's inline headers once the sanitizers'
  # instrumentation is in (std::optional<at::Generator>), as GCC's manual warns it may.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(segscope_warnings INTERFACE -Wno-maybe-uninitialized)
  endif()
endif()
