# Writes the bytes of IN into OUT as a C array NAME and its length NAME_len,
# so that a file (the dashboard's page) is part of the binary.
# Usage: cmake -DIN=file -DOUT=file.c -DNAME=symbol -P embed.cmake
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" digits)
math(EXPR len "${digits} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" bytes "${bytes}")
file(WRITE ${OUT} "/* Generated from ${IN} by cmake/embed.cmake: do not edit. */\n"
                  "#include <stddef.h>\n"
                  "const unsigned char ${NAME}[] = {\n${bytes}0x00};\n"
                  "const size_t ${NAME}_len = ${len};\n")
