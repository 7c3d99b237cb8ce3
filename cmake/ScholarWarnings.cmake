# Warnings for scholar's own targets only; consumers of scholar::scholar never inherit them.
function(scholar_set_warnings target)
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    # Option structs are meant to be filled with designated initializers, leaving the rest at their
    # defaults; GCC 12 would warn about every such use.
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wno-missing-field-initializers)
    if(SCHOLAR_WERROR)
      target_compile_options(${target} PRIVATE -Werror)
    endif()
  endif()
endfunction()
