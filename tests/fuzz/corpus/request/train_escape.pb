
../tinyR/etc/passwdz../x