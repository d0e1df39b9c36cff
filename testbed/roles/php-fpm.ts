/**
 * php-fpm 8.2, shared by both web roles; vhosts pass PHP to its socket.
 */
import { initScriptService } from './role';

export const PHP_FPM_SOCKET = '/run/php/php8.2-fpm.sock';
export const phpFpmService = initScriptService('php8.2-fpm');
