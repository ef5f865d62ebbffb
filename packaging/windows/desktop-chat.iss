; Inno Setup script: wraps the PyInstaller onedir bundle dist\desktop-chat\ into DesktopChat-<version>-setup.exe.
; Built by .github/workflows/release.yml (windows job):  iscc /DAppVersion=0.1.0 packaging\windows\desktop-chat.iss
; Untested here: only the Linux bundle is built and checked in this repository's CI.
#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif

[Setup]
AppId={{6F1C2B9E-3D4A-4E7B-9C51-D35A7E0C2F10}
AppName=Desktop Chat
AppVersion={#AppVersion}
AppPublisher=desktop-chat
DefaultDirName={autopf}\Desktop Chat
DefaultGroupName=Desktop Chat
DisableProgramGroupPage=yes
OutputDir=..\..\dist
OutputBaseFilename=DesktopChat-{#AppVersion}-setup
Compression=lzma2/max
SolidCompression=yes
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
PrivilegesRequiredOverridesAllowed=dialog
UninstallDisplayIcon={app}\desktop-chat.exe
; Code signing placeholder: configure a SignTool named "signtool" in the build (iscc /Ssigntool=...) and uncomment.
; SignTool=signtool

[Files]
Source: "..\..\dist\desktop-chat\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\Desktop Chat"; Filename: "{app}\desktop-chat.exe"
Name: "{autodesktop}\Desktop Chat"; Filename: "{app}\desktop-chat.exe"; Tasks: desktopicon

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Run]
Filename: "{app}\desktop-chat.exe"; Description: "{cm:LaunchProgram,Desktop Chat}"; Flags: nowait postinstall skipifsilent
